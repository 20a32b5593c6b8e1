import { performance } from 'node:perf_hooks';
import { SlipstreamError } from '../errors/index.js';

export interface TimeItOptions {
  /** Untimed calls first (JIT, caches, lazy allocation); default 3. */
  warmup?: number;
  /** Least number of timed calls; default 10. */
  iterations?: number;
  /** Keep timing until the timed calls add up to this much too; default 0. */
  minTimeMs?: number;
  /** Upper bound on timed calls, so that minTimeMs on a tiny fn ends; default 100,000. */
  maxIterations?: number;
  /** Runs untimed before each timed call, e.g. to rotate buffers for a cold cache. */
  beforeEach?: () => unknown;
}

/** Milliseconds per call. */
export interface TimingStats {
  iterations: number;
  median: number;
  mean: number;
  min: number;
  max: number;
  p10: number;
  p90: number;
  /** Every timed call, in call order. */
  samples: number[];
}

function count(value: number | undefined, fallback: number, name: string, min: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < min) {
    throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `timeIt: expected an integer >= ${min} for ${name}, got ${v}`);
  }
  return v;
}

function isThenable(x: unknown): x is PromiseLike<unknown> {
  return (typeof x === 'object' || typeof x === 'function') && x !== null && typeof (x as { then?: unknown }).then === 'function';
}

/** Percentile by linear interpolation between order statistics (numpy's default). */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function summarize(samples: readonly number[]): TimingStats {
  const sorted = [...samples].sort((x, y) => x - y);
  const mean = samples.reduce((s, x) => s + x, 0) / samples.length;
  return {
    iterations: samples.length,
    median: percentile(sorted, 0.5),
    mean,
    min: sorted[0],
    max: sorted[sorted.length - 1],
    p10: percentile(sorted, 0.1),
    p90: percentile(sorted, 0.9),
    samples: [...samples],
  };
}

/**
 * Times `fn` (sync or async; a returned promise is awaited inside the timed span). Report the
 * median: unlike the mean it ignores the odd GC pause or scheduler hiccup.
 */
export async function timeIt(fn: () => unknown, options: TimeItOptions = {}): Promise<TimingStats> {
  const warmup = count(options.warmup, 3, 'warmup', 0);
  const iterations = count(options.iterations, 10, 'iterations', 1);
  const maxIterations = count(options.maxIterations, 100_000, 'maxIterations', iterations);
  const minTimeMs = options.minTimeMs ?? 0;
  if (!(minTimeMs >= 0 && Number.isFinite(minTimeMs))) {
    throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `timeIt: expected a non-negative minTimeMs, got ${minTimeMs}`);
  }
  const run = async (): Promise<number> => {
    if (options.beforeEach !== undefined) {
      const r = options.beforeEach();
      if (isThenable(r)) await r;
    }
    const t0 = performance.now();
    const r = fn();
    if (isThenable(r)) await r;
    return performance.now() - t0;
  };
  for (let i = 0; i < warmup; i++) await run();
  const samples: number[] = [];
  let spent = 0;
  while (samples.length < maxIterations && (samples.length < iterations || spent < minTimeMs)) {
    const ms = await run();
    samples.push(ms);
    spent += ms;
  }
  return summarize(samples);
}
