/**
 * TeaCache, First Block Cache and MagCache driven the way adapters/embedded/pipeline.ts drives a
 * SkipPolicy: beginCall, then per block skip() (asked only once the block has run) or observe(),
 * then endCall(skipped). Each call is recorded as
 *   C  every block ran       S  every block skipped (the whole stack residual reused)
 *   F  block 0 ran, every other block skipped (First Block Cache's skip)
 *   X  anything else (a policy that skips part of a stack: wrong for all three)
 * Every expected pattern is derived by hand in the comments; the numbers are dyadic so that the
 * sums are exact and the strict "<" of each rule can be tested at equality.
 */
import { describe, expect, it } from 'vitest';

import type { BlockStats } from '../../core/src/runtime/index.js';
import type { CallSignals, SkipPolicy } from '../policy.js';
import { referenceCachesManifest } from './manifest.js';
import { FirstBlockCache, MagCache, TeaCache, type ReferenceCacheParams } from './stack-caches.js';

const LAYERS = 3;
const STATS: BlockStats = { inputL1: 1, deltaL1: 0.5, gamma: 0.5, deltaChange: 0.1, maxOutlier: 1, fullLinears: 0, lowbitLinears: 1, attentionSparsity: 0 };

function params(p: Partial<ReferenceCacheParams> & Pick<ReferenceCacheParams, 'method' | 'threshold'>): ReferenceCacheParams {
  return referenceCachesManifest.params.parse(p);
}

interface Script {
  /** e0 of step t (timeEmbedding()); default: reading it fails the test. */
  e0?: (step: number) => number[];
  /** The residual stream before block 0 at step t, and block 0's residual; default: reading fails. */
  before?: (step: number) => number[];
  residual0?: (step: number) => number[];
}

interface Trace {
  pattern: string;
  e0Reads: number[];
  tokenReads: number[];
}

/**
 * Calls for steps firstStep … until − 1 of a run of `steps` (until < steps: a video abandoned
 * early). `ran`: which blocks the runner has run (it asks skip() only of those), kept between
 * drives to model a runner that was not reset.
 */
function drive(policy: SkipPolicy, steps: number, script: Script, firstStep = 0, until = steps, ran = new Array<boolean>(LAYERS).fill(false)): Trace {
  const trace: Trace = { pattern: '', e0Reads: [], tokenReads: [] };
  for (let step = firstStep; step < until; step++) {
    let stream: Float32Array | null = null;
    let e0Reads = 0, tokenReads = 0;
    const signals: CallSignals = {
      timeEmbedding: () => {
        e0Reads++;
        if (!script.e0) throw new Error(`${policy.id} read timeEmbedding()`);
        return Float32Array.from(script.e0(step));
      },
      tokens: () => {
        tokenReads++;
        if (!script.before) throw new Error(`${policy.id} read tokens()`);
        stream ??= Float32Array.from(script.before(step));
        return Float32Array.from(stream);
      },
    };
    policy.beginCall({ step, steps, sigma: 1 - step / steps }, signals);
    let skipped = 0;
    const ranNow: boolean[] = [];
    for (let i = 0; i < LAYERS; i++) {
      if (ran[i] && policy.skip(i)) {
        skipped++;
        ranNow.push(false);
        continue;
      }
      // The block runs: block 0 adds the scripted residual, the others something unrelated.
      if (script.before) {
        stream ??= Float32Array.from(script.before(step));
        const add = i === 0 ? script.residual0!(step) : stream.map(() => 100 + i);
        stream = stream.map((v, j) => v + add[j]!);
      }
      policy.observe(i, STATS, signals);
      ran[i] = true;
      ranNow.push(true);
    }
    policy.endCall?.(skipped);
    trace.pattern += skipped === 0 ? 'C' : skipped === LAYERS ? 'S' : ranNow[0] && skipped === LAYERS - 1 ? 'F' : 'X';
    trace.e0Reads.push(e0Reads);
    trace.tokenReads.push(tokenReads);
  }
  return trace;
}

/** e0 = v_t on every element, v_t = 1.25^t: the relative L1 between consecutive steps is 0.25. */
const geometric = (step: number) => new Array(4).fill(1.25 ** step) as number[];
const zeros5 = [0, 0, 0, 0, 0];

describe('TeaCache', () => {
  const tea = (threshold: number, coefficients: number[], extra: Partial<ReferenceCacheParams> = {}) =>
    new TeaCache(params({ method: 'teacache', threshold, ...extra }), coefficients);

  it('computes the first step, the warm-up steps and the last step, whatever the signal says', () => {
    // f ≡ 0: A stays 0 < δ, so every other step skips.
    expect(drive(tea(0.1, zeros5), 6, { e0: geometric }).pattern).toBe('CSSSSC');
    expect(drive(tea(0.1, zeros5, { warmupSteps: 3 }), 6, { e0: geometric }).pattern).toBe('CCCSSC');
    expect(drive(tea(0.1, zeros5), 2, { e0: geometric }).pattern).toBe('CC');
    expect(drive(tea(0.1, zeros5), 1, { e0: geometric }).pattern).toBe('C');
  });

  it('rescales d by f(d) = c4 d⁴ + c3 d³ + c2 d² + c1 d + c0 with the coefficients highest power first', () => {
    // d = 0.25 every step. [16, 0, 0, 0, 0]: f = 16·0.25⁴ = 0.0625. δ = 0.1:
    // step 1 A = 0.0625 S; step 2 A = 0.125 ≥ δ → C, A = 0; step 3 S; step 4 C; step 5 last C.
    // (Read lowest power first it would be f = 16: every step computed.)
    expect(drive(tea(0.1, [16, 0, 0, 0, 0]), 6, { e0: geometric }).pattern).toBe('CSCSCC');
    // [0, 0, 4, 0, 0.125]: f = 4·0.0625 + 0.125 = 0.375. δ = 0.76: A = 0.375 S, 0.75 S, 1.125 C,
    // 0.375 S, last C.
    expect(drive(tea(0.76, [0, 0, 4, 0, 0.125]), 6, { e0: geometric }).pattern).toBe('CSSCSC');
    // [0, 8, 0, 0, 0]: f = 8·0.25³ = 0.125; [0, 0, 0, 2, 0]: f = 0.5. δ = 0.3:
    // 0.125, 0.25 S S, 0.375 C; and 0.5 C every step.
    expect(drive(tea(0.3, [0, 8, 0, 0, 0]), 6, { e0: geometric }).pattern).toBe('CSSCSC');
    expect(drive(tea(0.3, [0, 0, 0, 2, 0]), 6, { e0: geometric }).pattern).toBe('CCCCCC');
  });

  it('skips while A < δ: at A = δ it computes and resets A', () => {
    // f ≡ 0.25 (c0 alone): A = 0.25 S, 0.5 = δ → C (A = 0), 0.25 S, 0.5 C, 0.25 S, 0.5 C, last C.
    expect(drive(tea(0.5, [0, 0, 0, 0, 0.25]), 8, { e0: geometric }).pattern).toBe('CSCSCSCC');
    // Just above: 0.25, 0.5 S S; 0.75 C; …
    expect(drive(tea(0.5001, [0, 0, 0, 0, 0.25]), 8, { e0: geometric }).pattern).toBe('CSSCSSCC');
  });

  it('measures d = mean|e0_t − e0_{t−1}| / mean|e0_{t−1}|', () => {
    // prev = [1, −2, 3, −2] (Σ|·| = 8), next = [1.5, −2, 3, −2.5]: Σ|Δ| = 1, d = 1/8 = 0.125
    // (relative to the new one it would be 1/9 ≈ 0.111). f = d, δ = 0.12: A = 0.125 ≥ δ → C.
    const e0 = (step: number) => (step === 0 ? [1, -2, 3, -2] : [1.5, -2, 3, -2.5]);
    expect(drive(tea(0.12, [0, 0, 0, 1, 0]), 3, { e0 }).pattern).toBe('CCC');
    // δ = 0.13 > 0.125 → S.
    expect(drive(tea(0.13, [0, 0, 0, 1, 0]), 3, { e0 }).pattern).toBe('CSC');
  });

  it('compares e0 with the previous call, skipped or not', () => {
    // f = d, δ = 0.6, e0 ×1.25 per step. Step 1: d = 0.25, A = 0.25 S. Step 2: d = 0.25 against
    // step 1 (against the last computed step 0 it would be 0.5625), A = 0.5 S. Step 3: 0.75 C.
    expect(drive(tea(0.6, [0, 0, 0, 1, 0]), 5, { e0: geometric }).pattern).toBe('CSSCC');
  });

  it('adds nothing for a negative f(d)', () => {
    // f(d) = d − 0.25. e0: 1, 1, 1.5: d = 0 (f = −0.25, adds 0), then d = 0.5 (f = 0.25).
    // δ = 0.2: A = 0 S, then A = 0.25 ≥ δ → C. (Adding −0.25 would leave A = 0 < δ: S.)
    const e0 = (step: number) => new Array(4).fill(step < 2 ? 1 : 1.5) as number[];
    expect(drive(tea(0.2, [0, 0, 0, 1, -0.25]), 4, { e0 }).pattern).toBe('CSCC');
  });

  it('reads e0 once per call and never the tokens', () => {
    const t = drive(tea(0.5, [0, 0, 0, 0, 0.25]), 6, { e0: geometric });
    expect(t.e0Reads).toEqual([1, 1, 1, 1, 1, 1]);
    expect(t.tokenReads).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('reset() starts over: the first call after it computes, wherever the run starts', () => {
    // f ≡ 0.25, δ = 0.6. After a whole video, a run resumed at step 2 would skip (A = 0.25 < δ)
    // were the policy not reset; after reset() nothing has been computed, so it computes.
    const t = tea(0.6, [0, 0, 0, 0, 0.25]);
    const ran = new Array<boolean>(LAYERS).fill(false);
    expect(drive(t, 6, { e0: geometric }, 0, 6, ran).pattern).toBe('CSSCSC');
    expect(drive(t, 6, { e0: geometric }, 2, 6, ran).pattern).toBe('SSCC');
    t.reset();
    expect(drive(t, 6, { e0: geometric }, 2).pattern).toBe('CSSC');
  });
});

describe('FirstBlockCache', () => {
  const fbc = (threshold: number, extra: Partial<ReferenceCacheParams> = {}) =>
    new FirstBlockCache(params({ method: 'first-block-cache', threshold, ...extra }));
  // The stream before block 0 changes a lot from step to step; block 0's residual is s_t·base.
  const before = (step: number) => [3 + step * 16, -7 - step * 8, 5, 0.5 * step];
  const base = [1, 2, -1, 0.5];
  const scaled = (s: number[]) => (step: number) => base.map((b) => b * s[step]!);

  it('skips every block but block 0 while the block-0 residual is within the threshold of the reference', () => {
    // s = 1, 1.0625, 1.125, 1.125, 1.25, 1.25; threshold 0.1; d = |s_t − s_ref| / s_ref:
    // step 0: first → C, ref = r₀ (s 1).
    // step 1: d = 0.0625 < 0.1 → F; the reference stays r₀ (a skipped call does not update it).
    // step 2: d = 0.125 against r₀ (against r₁ it would be 0.0588: F) → C, ref = r₂ (1.125).
    // step 3: d = 0 → F. step 4: d = 0.125 / 1.125 = 0.111 → C. step 5: last → C.
    const t = drive(fbc(0.1), 6, { before, residual0: scaled([1, 1.0625, 1.125, 1.125, 1.25, 1.25]) });
    expect(t.pattern).toBe('CFCFCC');
    expect(t.e0Reads).toEqual([0, 0, 0, 0, 0, 0]);
    // Two reads per call: the stream before and after block 0, none for the other blocks.
    expect(t.tokenReads).toEqual([2, 2, 2, 2, 2, 2]);
  });

  it('compares residuals (after − before), not the stream itself', () => {
    // The same residual every step while the stream before block 0 moves: every middle step skips.
    const t = drive(fbc(0.01), 6, { before, residual0: scaled([1, 1, 1, 1, 1, 1]) });
    expect(t.pattern).toBe('CFFFFC');
  });

  it('skips only below the threshold (strict), with d = mean|r − r_ref| / mean|r_ref|', () => {
    // s₁ = 1.125: d = 0.125 = threshold → C; threshold 0.1251 → F.
    const residual0 = scaled([1, 1.125, 1.125, 1.125]);
    expect(drive(fbc(0.125), 4, { before, residual0 }).pattern).toBe('CCFC');
    expect(drive(fbc(0.1251), 4, { before, residual0 }).pattern).toBe('CFFC');
    // s₁ = 0.875: d = 0.125 relative to r_ref (relative to r it would be 0.143).
    const down = scaled([1, 0.875, 0.875, 0.875]);
    expect(drive(fbc(0.13), 4, { before, residual0: down }).pattern).toBe('CFFC');
  });

  it('computes the warm-up steps and the last one', () => {
    const residual0 = scaled([1, 1, 1, 1, 1, 1]);
    expect(drive(fbc(0.5, { warmupSteps: 3 }), 6, { before, residual0 }).pattern).toBe('CCCFFC');
  });

  it('reset() starts over: the next call computes and becomes the reference', () => {
    const p = fbc(0.1);
    expect(drive(p, 6, { before, residual0: scaled([1, 1, 1]) }, 0, 3).pattern).toBe('CFF');
    p.reset();
    // A new video: step 0 computes although its residual equals the old reference.
    expect(drive(p, 3, { before, residual0: scaled([1, 1, 1]) }).pattern).toBe('CFC');
    p.reset();
    // Resumed at step 1 with no reference: computes first, then compares with that.
    expect(drive(p, 4, { before, residual0: scaled([1, 1, 1, 1]) }, 1).pattern).toBe('CFC');
  });
});

describe('MagCache', () => {
  const mag = (threshold: number, ratios: number[], steps: number, extra: Partial<ReferenceCacheParams> = {}) =>
    new MagCache(params({ method: 'magcache', threshold, ...extra }), ratios, steps);
  const ones = (n: number) => new Array<number>(n).fill(1);

  it('keeps the first 20% of the steps (the retention phase) and the last one', () => {
    // γ ≡ 1: R = 1, err = 0 < δ, K large: every step after the retention phase skips.
    expect(drive(mag(0.1, ones(9), 10, { maxSkips: 100 }), 10, {}).pattern).toBe('CCSSSSSSSC'); // 20% of 10 = 2
    expect(drive(mag(0.1, ones(19), 20, { maxSkips: 100 }), 20, {}).pattern).toBe('CCCC' + 'S'.repeat(15) + 'C'); // 4
    expect(drive(mag(0.1, ones(29), 30, { maxSkips: 100 }), 30, {}).pattern).toBe('C'.repeat(6) + 'S'.repeat(23) + 'C'); // 6
    expect(drive(mag(0.1, ones(4), 5, { maxSkips: 100 }), 5, {}).pattern).toBe('CSSSC'); // 1 (at least one)
    expect(drive(mag(0.1, ones(9), 10, { maxSkips: 100, warmupSteps: 5 }), 10, {}).pattern).toBe('CCCCCSSSSC');
  });

  it('skips at most K steps in a row', () => {
    // γ ≡ 1, retention 2 of 10: K = 2: S S C S S C S, last C. K = 1: S C S C S C S C.
    expect(drive(mag(0.1, ones(9), 10, { maxSkips: 2 }), 10, {}).pattern).toBe('CCSSCSSCSC');
    expect(drive(mag(0.1, ones(9), 10, { maxSkips: 1 }), 10, {}).pattern).toBe('CCSCSCSCSC');
  });

  it('accumulates err += |1 − R| with R ← R·γ_t, skips while err < δ, and resets on a compute', () => {
    // γ ≡ 0.875 from a compute: R = 0.875, 0.765625, 0.669921875;
    // |1 − R| = 0.125, 0.234375, 0.330078125; err = 0.125, 0.359375, 0.689453125.
    // δ = 0.36: S S C, three times, then the last step.
    const g = new Array<number>(9).fill(0.875);
    expect(drive(mag(0.36, g, 10, { warmupSteps: 1, maxSkips: 10 }), 10, {}).pattern).toBe('CSSCSSCSSC');
    // δ = err₂ exactly (0.359375): the second step computes (err < δ fails). |1 − R₂| alone
    // (0.234375) would be below δ: it is the sum that counts.
    expect(drive(mag(0.359375, g, 10, { warmupSteps: 1, maxSkips: 10 }), 10, {}).pattern).toBe('CSCSCSCSCC');
    // δ below err₁: never.
    expect(drive(mag(0.125, g, 10, { warmupSteps: 1, maxSkips: 10 }), 10, {}).pattern).toBe('CCCCCCCCCC');
  });

  it('uses ratios[t − 1] at step t when the calibration had the same step count', () => {
    // 5 steps, ratios [1, 1, 0.5, 1]: step 1 γ = 1 (err 0) S, step 2 γ = 1 S, step 3 γ = 0.5:
    // R = 0.5, err = 0.5 ≥ 0.4 → C, step 4 last C. (Indexed by t it would be C at step 2.)
    expect(drive(mag(0.4, [1, 1, 0.5, 1], 5, { warmupSteps: 1, maxSkips: 10 }), 5, {}).pattern).toBe('CSSCC');
  });

  it('resamples the ratios linearly when the calibration had another step count', () => {
    // 2 ratios [1, 0.5] (calibrated on 3 steps) for 6 steps: step t ↦ position (t − 1)/4 · 1,
    // γ₁..₄ = 1, 0.875, 0.75, 0.625. From step 1: R = 1, 0.875, 0.65625, 0.41015625;
    // err = 0, 0.125, 0.46875, 1.05859375.
    // δ = 0.47: S S S, then C at step 4, last C.
    expect(drive(mag(0.47, [1, 0.5], 6, { warmupSteps: 1, maxSkips: 10 }), 6, {}).pattern).toBe('CSSSCC');
    // δ = 0.46875: C at step 3; step 4 from a fresh R: R = 0.625, err = 0.375 < δ → S; last C.
    expect(drive(mag(0.46875, [1, 0.5], 6, { warmupSteps: 1, maxSkips: 10 }), 6, {}).pattern).toBe('CSSCSC');
    // 9 ratios (10 steps) for 4 steps: positions 0, 4, 8, so γ₁ = r[0], γ₂ = r[4].
    // r[4] = 0.75: err = 0, 0.25 < 0.3 → S S; any neighbour (0.1) would give err 0.9 → C.
    const r = [1, 0.1, 0.1, 0.1, 0.75, 0.1, 0.1, 0.1, 0.1];
    expect(drive(mag(0.3, r, 4, { warmupSteps: 1, maxSkips: 10 }), 4, {}).pattern).toBe('CSSC');
  });

  it('reads no signal, and reset() starts over', () => {
    // (drive's signals throw when read.) γ ≡ 0.875, δ = 0.36: after a whole video (last step
    // computed, R = 1, err = 0) a run resumed at step 3 would skip (err 0.125); after reset()
    // its first call computes.
    const m = mag(0.36, new Array<number>(9).fill(0.875), 10, { warmupSteps: 1, maxSkips: 10 });
    const ran = new Array<boolean>(LAYERS).fill(false);
    expect(drive(m, 10, {}, 0, 10, ran).pattern).toBe('CSSCSSCSSC');
    expect(drive(m, 10, {}, 3, 10, ran).pattern).toBe('SSCSSCC');
    m.reset();
    expect(drive(m, 10, {}, 3).pattern).toBe('CSSCSSC');
  });
});
