/**
 * Temporal Delta Cache (6Bit-Diffusion). Per block i, its residual δ = out − in is cached by the
 * runtime. Each time the block runs, the runtime reports how far δ moved since its last run
 * (mean|δ − δ_prev| / mean|δ_prev|); divided by the steps in between, that is the block's per-step
 * drift r. The drift at the next step is predicted from the last two observations,
 *     r̂ = r₁ + max(0, r₁ − r₂)                   (a rising drift is extrapolated, a falling one is not),
 * and reusing a δ that is n steps old is predicted to put about n·r̂·Γ of relative error into the
 * residual stream (Γ = mean|δ| / mean|in|: a block that barely changes the stream matters less).
 * Skipping adds that to the block's accumulated error E; a block is skipped while E stays ≤ τ and
 * it has been skipped fewer than N_max times in a row. A recompute resets E.
 */
import type { BlockStats } from '../../core/src/runtime/index.js';
import type { CallInfo, SkipPolicy } from '../policy.js';
import type { deltaCacheManifest } from './manifest.js';
import type { PluginParams } from '../manifest.js';

export type DeltaCacheParams = PluginParams<typeof deltaCacheManifest>;

interface BlockHistory {
  lastRunStep: number;
  drift1: number | null; // latest per-step drift
  drift2: number | null; // the one before
  gamma: number;
  error: number;         // E: accumulated predicted error since the last recompute
  skipped: number;       // consecutive skips
}

export class TemporalDeltaCache implements SkipPolicy {
  readonly id = 'delta-cache';
  #blocks: BlockHistory[] = [];
  #call: CallInfo = { step: 0, steps: 1, sigma: 1 };

  constructor(readonly params: DeltaCacheParams) {}

  reset(): void {
    this.#blocks = [];
  }

  beginCall(call: CallInfo): void {
    this.#call = call;
  }

  #history(block: number): BlockHistory {
    return (this.#blocks[block] ??= { lastRunStep: -1, drift1: null, drift2: null, gamma: 0, error: 0, skipped: 0 });
  }

  skip(block: number): boolean {
    const { step, steps } = this.#call;
    const p = this.params;
    if (step < p.warmupSteps || step >= steps - p.finalSteps) return false;
    const h = this.#history(block);
    if (h.drift1 === null || h.drift2 === null || h.skipped >= p.maxSkips) return false;
    const predicted = h.drift1 + Math.max(0, h.drift1 - h.drift2);
    const error = h.error + (h.skipped + 1) * predicted * h.gamma;
    if (error > p.threshold) return false;
    h.error = error;
    h.skipped++;
    return true;
  }

  observe(block: number, stats: BlockStats): void {
    const h = this.#history(block);
    const step = this.#call.step;
    if (stats.deltaChange !== null && h.lastRunStep >= 0) {
      const drift = stats.deltaChange / Math.max(1, step - h.lastRunStep);
      h.drift2 = h.drift1;
      h.drift1 = drift;
    }
    h.lastRunStep = step;
    h.gamma = stats.gamma;
    h.error = 0;
    h.skipped = 0;
  }
}
