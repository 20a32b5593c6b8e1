/**
 * EasyCache driven the way adapters/embedded/pipeline.ts drives an OutputCache: reuse(call, x)
 * first; when it answers null the model runs and observe(call, x, v) follows. Expected values are
 * derived by hand from the rule in easycache.ts:
 *   k = mean|v_t − v_last| / mean|x_t − x_last|            at a computed step after a computed one
 *   ε_t = k · mean|x_t − x_{t−1}| / mean|v_last|            x_{t−1}: the previous call's x
 *   reuse v = x + (v_last − x_last) while Σε < τ; the first warm-up steps (5) and the last step run
 */
import { describe, expect, it } from 'vitest';

import type { OutputCache } from '../policy.js';
import { EasyCache } from './easycache.js';
import { referenceCachesManifest } from './manifest.js';

function easy(threshold: number, warmupSteps?: number): OutputCache {
  return new EasyCache(referenceCachesManifest.params.parse({ method: 'easycache', threshold, ...(warmupSteps === undefined ? {} : { warmupSteps }) }));
}

/** [a, −a]: mean|x − y| of two such vectors is |a − b|, mean|x| is |a|. */
const pair = (a: number) => Float32Array.from([a, -a]);

interface Step {
  x: Float32Array;
  /** The model's output if this step runs (missing: running it fails the test). */
  v?: Float32Array;
}

/** Runs the steps; returns 'C' (model ran) or 'R' (reused) per step and the velocities used. */
function drive(cache: OutputCache, script: Step[], steps = script.length): { pattern: string; v: Float32Array[] } {
  let pattern = '';
  const used: Float32Array[] = [];
  script.forEach(({ x, v }, step) => {
    const call = { step, steps, sigma: 1 - step / steps };
    const reused = cache.reuse(call, x);
    if (reused) {
      pattern += 'R';
      used.push(reused);
      return;
    }
    if (!v) throw new Error(`step ${step} ran the model; the test expected a reuse`);
    cache.observe(call, x, v);
    pattern += 'C';
    used.push(v);
  });
  return { pattern, v: used };
}

// Eight steps, warm-up 2, τ = 0.4.
// step 0: warm-up → C. step 1: warm-up → C; k = |1 − 1.5| / |0.5 − 1| = 1.
// step 2: ε = 1·|0.25 − 0.5| / |v₁| = 0.25 → Σ 0.25 < τ → reuse 0.25 + (1 − 0.5) = 0.75.
// step 3: ε = |0.125 − 0.25| / 1 = 0.125 (against the previous call's x, step 2, although it was
//         reused) → Σ 0.375 → reuse 0.125 + 0.5 = 0.625.
// step 4: ε = |0.0625 − 0.125| = 0.0625 → Σ 0.4375 ≥ τ → C, Σ = 0; k = |0.125 − 1| / |0.0625 − 0.5|
//         = 0.875 / 0.4375 = 2 (against the last computed step, 1).
// step 5: ε = 2·|0.0546875 − 0.0625| / |v₄| = 2·0.0078125 / 0.125 = 0.125 → reuse
//         0.0546875 + (0.125 − 0.0625) = 0.1171875.
// step 6: ε = 2·|0.03125 − 0.0546875| / 0.125 = 0.375 → Σ 0.5 ≥ τ → C.
// step 7: last → C.
const SCRIPT: Step[] = [
  { x: pair(1), v: pair(1.5) },
  { x: pair(0.5), v: pair(1) },
  { x: pair(0.25) },
  { x: pair(0.125) },
  { x: pair(0.0625), v: pair(0.125) },
  { x: pair(0.0546875) },
  { x: pair(0.03125), v: pair(0.5) },
  { x: pair(0.03), v: pair(0.25) },
];

describe('EasyCache', () => {
  it('accumulates ε against τ, refreshes k at each computed step and reuses x + (v_last − x_last)', () => {
    const { pattern, v } = drive(easy(0.4, 2), SCRIPT);
    expect(pattern).toBe('CCRRCRCC');
    expect([...v[2]!]).toEqual([0.75, -0.75]);
    expect([...v[3]!]).toEqual([0.625, -0.625]);
    expect([...v[5]!]).toEqual([0.1171875, -0.1171875]);
  });

  it('reuses only while Σε < τ (at Σε = τ it runs)', () => {
    // τ = 0.375 = Σε at step 3: step 3 runs (v₃ needed); k = |v₃ − 1| / |0.125 − 0.5|.
    const script = SCRIPT.map((s, i) => (i === 3 ? { ...s, v: pair(0.625) } : s));
    expect(drive(easy(0.375, 2), script).pattern.slice(0, 4)).toBe('CCRC');
    // τ just above 0.25 = Σε at step 2 but below 0.375: the same.
    expect(drive(easy(0.26, 2), script).pattern.slice(0, 4)).toBe('CCRC');
    // τ = 0.25: step 2 already runs.
    const run2 = SCRIPT.map((s, i) => (i === 2 ? { ...s, v: pair(0.75) } : i === 3 ? { ...s, v: pair(0.625) } : s));
    expect(drive(easy(0.25, 2), run2).pattern.slice(0, 3)).toBe('CCC');
  });

  it('computes the first 5 steps by default and always the last step', () => {
    // x_t = 1 − t/64, v_t = 2 − t/64: k = 1, ε ≈ (1/64) / 1.9 per step; τ = 1 is never reached.
    const script: Step[] = Array.from({ length: 10 }, (_, t) => ({ x: pair(1 - t / 64), v: pair(2 - t / 64) }));
    expect(drive(easy(1), script).pattern).toBe('CCCCCRRRRC');
    // Warm-up 1: step 1 still runs, because k needs two computed steps.
    expect(drive(easy(1, 1), script).pattern).toBe('CCRRRRRRRC');
    expect(drive(easy(1, 7), script).pattern).toBe('CCCCCCCRRC');
  });

  it('reuses elementwise: v = x + (v_last − x_last)', () => {
    const xLast = Float32Array.from([1, 2, 3, 4]);
    const vLast = Float32Array.from([0.5, 0, 4, -1]); // v − x = [−0.5, −2, 1, −5]
    const script: Step[] = [
      { x: Float32Array.from([1.5, 2, 3, 4.5]), v: Float32Array.from([1, 0.5, 4, -1]) },
      { x: xLast, v: vLast },
      { x: Float32Array.from([1, 2, 3, 3.5]) },
      { x: Float32Array.from([0, 0, 0, 0]), v: Float32Array.from([0, 0, 0, 0]) },
    ];
    // k = mean|v₁ − v₀| / mean|x₁ − x₀| = (0.5+0.5+0+0)/4 / (0.5+0+0+0.5)/4 = 1;
    // ε₂ = 1·(0.5/4) / (5.5/4) = 1/11 < τ = 0.5 → reuse [1, 2, 3, 3.5] + [−0.5, −2, 1, −5].
    const { pattern, v } = drive(easy(0.5, 2), script);
    expect(pattern).toBe('CCRC');
    expect([...v[2]!]).toEqual([0.5, 0, 4, -1.5]);
  });

  it('keeps its own copies of x and v', () => {
    const cache = easy(0.4, 2);
    const xs = SCRIPT.slice(0, 3).map((s) => ({ x: Float32Array.from(s.x), v: s.v && Float32Array.from(s.v) }));
    drive(cache, xs.slice(0, 2), 8);
    // The caller reuses its buffers: scribbling over them must not change the cache.
    xs[0]!.x.fill(99);
    xs[1]!.x.fill(99);
    xs[1]!.v!.fill(99);
    const r = cache.reuse({ step: 2, steps: 8, sigma: 0.75 }, xs[2]!.x);
    expect(r).not.toBeNull();
    expect([...r!]).toEqual([0.75, -0.75]);
    expect(r).not.toBe(xs[2]!.x);
  });

  it('reset() forgets the last computed step, k and Σε', () => {
    // After the 8-step video the cache holds x₇ = 0.03 and a k; a call at step 2 of a new run
    // with the same x would be reused (ε = k·0 = 0) were it not reset.
    const stale = easy(0.4, 2);
    drive(stale, SCRIPT);
    expect(stale.reuse({ step: 2, steps: 8, sigma: 0.75 }, pair(0.03))).not.toBeNull();

    const cache = easy(0.4, 2);
    drive(cache, SCRIPT);
    cache.reset();
    // Resumed at step 2 of 8 with nothing known: runs; runs again (k needs two computed steps:
    // k = |1 − 0.25| / |0.5 − 0.03|); then ε = k·0.01 / 1 ≈ 0.016 < τ: reused.
    const script: Step[] = [{ x: pair(0.03), v: pair(0.25) }, { x: pair(0.5), v: pair(1) }, { x: pair(0.49) }];
    let pattern = '';
    script.forEach(({ x, v }, i) => {
      const call = { step: i + 2, steps: 8, sigma: 0.5 };
      const r = cache.reuse(call, x);
      if (r) pattern += 'R';
      else {
        cache.observe(call, x, v!);
        pattern += 'C';
      }
    });
    expect(pattern).toBe('CCR');
  });

});
