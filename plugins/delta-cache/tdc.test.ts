/**
 * Temporal Delta Cache, driven the way adapters/embedded/pipeline.ts drives it (beginCall, then per
 * block skip() if it ran before, else observe()), with synthetic BlockStats. Every expected
 * decision is derived by hand from the rule in tdc.ts:
 *   drift r = deltaChange / (steps since the block last ran)
 *   r̂ = r₁ + max(0, r₁ − r₂)
 *   a skip of a δ that is n steps old adds n·r̂·Γ to E; skip while E ≤ τ and fewer than N_max in a row
 * The numbers are dyadic so that every sum is exact and the ≤ boundary can be tested.
 */
import { describe, expect, it } from 'vitest';

import type { BlockStats } from '../../core/src/runtime/index.js';
import type { CallSignals, SkipPolicy } from '../policy.js';
import { deltaCacheManifest } from './manifest.js';
import { TemporalDeltaCache, type DeltaCacheParams } from './tdc.js';

function stats(gamma: number, deltaChange: number | null): BlockStats {
  return { inputL1: 1, deltaL1: gamma, gamma, deltaChange, maxOutlier: 1, fullLinears: 0, lowbitLinears: 1, attentionSparsity: 0 };
}

/** TDC needs neither signal; reading one would cost a copy of the stream per call. */
const noSignals: CallSignals = {
  timeEmbedding: () => {
    throw new Error('TDC read timeEmbedding()');
  },
  tokens: () => {
    throw new Error('TDC read tokens()');
  },
};

function params(p: Partial<DeltaCacheParams>): DeltaCacheParams {
  return deltaCacheManifest.params.parse(p);
}

interface BlockScript {
  gamma: number;
  /** Per-step drift the block "really" has; a run reports drift × (steps since its last run). */
  drift: (step: number) => number;
  /** deltaChange reported on the block's first run (the runtime reports null there). */
  first?: number | null;
}

/**
 * Runs `steps` calls over the given blocks; returns one string per block, 'R' (ran) or 'S'
 * (skipped) per step.
 */
function drive(tdc: SkipPolicy, steps: number, blocks: BlockScript[]): string[] {
  const lastRun = blocks.map(() => -1);
  const out = blocks.map(() => '');
  for (let step = 0; step < steps; step++) {
    tdc.beginCall({ step, steps, sigma: 1 - step / steps }, noSignals);
    blocks.forEach((b, i) => {
      if (lastRun[i]! >= 0 && tdc.skip(i)) {
        out[i] += 'S';
        return;
      }
      const deltaChange = lastRun[i]! < 0 ? (b.first ?? null) : b.drift(step) * (step - lastRun[i]!);
      tdc.observe(i, stats(b.gamma, deltaChange), noSignals);
      lastRun[i] = step;
      out[i] += 'R';
    });
  }
  return out;
}

const constant = (r: number) => () => r;

describe('TemporalDeltaCache: when skipping is allowed at all', () => {
  it('never skips in the first warmupSteps or the last finalSteps steps', () => {
    // τ huge and N_max 16: every step that may skip does. Runs at 0, 1, 2 give two drifts, so
    // the earliest skip is step 3; warm-up pushes it to warmupSteps; the last finalSteps run.
    const huge = { threshold: 1e9, maxSkips: 16 };
    expect(drive(new TemporalDeltaCache(params({ ...huge, warmupSteps: 4, finalSteps: 1 })), 10, [{ gamma: 0.5, drift: constant(0.125) }])).toEqual(['RRRRSSSSSR']);
    expect(drive(new TemporalDeltaCache(params({ ...huge, warmupSteps: 6, finalSteps: 3 })), 12, [{ gamma: 0.5, drift: constant(0.125) }])).toEqual(['RRRRRRSSSRRR']);
    expect(drive(new TemporalDeltaCache(params({ ...huge, warmupSteps: 3, finalSteps: 0 })), 6, [{ gamma: 0.5, drift: constant(0.125) }])).toEqual(['RRRSSS']);
  });

  it('refuses to skip in warm-up or final steps even with a full history', () => {
    const tdc = new TemporalDeltaCache(params({ threshold: 1e9, maxSkips: 16, warmupSteps: 5, finalSteps: 2 }));
    for (let step = 0; step < 5; step++) {
      tdc.beginCall({ step, steps: 20, sigma: 1 });
      tdc.observe(0, stats(0.5, step === 0 ? null : 0.125));
    }
    // Four drifts observed; asked at a warm-up step (4 < 5) the answer is still no.
    tdc.beginCall({ step: 4, steps: 20, sigma: 1 });
    expect(tdc.skip(0)).toBe(false);
    // Steps 18 and 19 are the final two of 20.
    tdc.beginCall({ step: 18, steps: 20, sigma: 1 });
    expect(tdc.skip(0)).toBe(false);
    tdc.beginCall({ step: 19, steps: 20, sigma: 1 });
    expect(tdc.skip(0)).toBe(false);
    // Step 17 is neither.
    tdc.beginCall({ step: 17, steps: 20, sigma: 1 });
    expect(tdc.skip(0)).toBe(true);
  });

  it('needs two drift observations: the first run gives none, a null deltaChange gives none', () => {
    const p = params({ threshold: 1e9, maxSkips: 16, warmupSteps: 2, finalSteps: 0 });
    // Run 0: no drift (first run, even though a deltaChange is reported); run 1: r₁; run 2: r₂;
    // so step 2 still runs although warm-up (2) is over, and step 3 is the first skip.
    expect(drive(new TemporalDeltaCache(p), 6, [{ gamma: 0.5, drift: constant(0.125), first: 0.5 }])).toEqual(['RRRSSS']);
    // A block whose first reported change is null (what the runtime reports on a first run).
    expect(drive(new TemporalDeltaCache(p), 6, [{ gamma: 0.5, drift: constant(0.125), first: null }])).toEqual(['RRRSSS']);

    // A null deltaChange after the first run is not an observation either.
    const tdc = new TemporalDeltaCache(p);
    const seq: (number | null)[] = [null, 0.125, null, 0.125];
    seq.forEach((dc, step) => {
      tdc.beginCall({ step, steps: 10, sigma: 1 });
      tdc.observe(0, stats(0.5, dc));
    });
    // Observations at steps 1 and 3 only: two drifts, so step 4 may skip…
    tdc.beginCall({ step: 4, steps: 10, sigma: 1 });
    expect(tdc.skip(0)).toBe(true);
    // …but with only the one at step 1 it may not.
    const one = new TemporalDeltaCache(p);
    [null, 0.125, null, null].forEach((dc, step) => {
      one.beginCall({ step, steps: 10, sigma: 1 });
      one.observe(0, stats(0.5, dc));
    });
    one.beginCall({ step: 4, steps: 10, sigma: 1 });
    expect(one.skip(0)).toBe(false);
  });
});

describe('TemporalDeltaCache: the predicted error E = Σ n·r̂·Γ against τ', () => {
  it('accumulates n·r̂·Γ per consecutive skip and skips while E ≤ τ (boundary included)', () => {
    // r = 0.125 constant, so r̂ = 0.125; Γ = 0.5: r̂Γ = 0.0625.
    // E after skip 1: 1·0.0625 = 0.0625; after skip 2: 0.0625 + 2·0.0625 = 0.1875;
    // a third would make 0.1875 + 3·0.0625 = 0.375.
    // τ = 0.1875 (exactly E₂): two skips, then a run; the run resets E, so the pattern repeats.
    // Warm-up 3, final 1, 12 steps: R R R | S S R | S S R | S S | R(final).
    const b = [{ gamma: 0.5, drift: constant(0.125) }];
    expect(drive(new TemporalDeltaCache(params({ threshold: 0.1875, maxSkips: 16, warmupSteps: 3, finalSteps: 1 })), 12, b)).toEqual(['RRRSSRSSRSSR']);
    // τ just under E₂: one skip per recompute.
    expect(drive(new TemporalDeltaCache(params({ threshold: 0.1874, maxSkips: 16, warmupSteps: 3, finalSteps: 1 })), 12, b)).toEqual(['RRRSRSRSRSRR']);
    // τ = 0.375 = E₃: three skips.
    expect(drive(new TemporalDeltaCache(params({ threshold: 0.375, maxSkips: 16, warmupSteps: 3, finalSteps: 1 })), 12, b)).toEqual(['RRRSSSRSSSRR']);
    // τ just under E₁ = 0.0625: never.
    expect(drive(new TemporalDeltaCache(params({ threshold: 0.0624, maxSkips: 16, warmupSteps: 3, finalSteps: 1 })), 12, b)).toEqual(['RRRRRRRRRRRR']);
  });

  it('weighs by Γ: a block that barely changes the stream is skipped longer', () => {
    // Same drift 0.125, τ = 0.1875. Γ = 0.5 → two skips (above). Γ = 0.25 → r̂Γ = 0.03125,
    // E₁..₄ = 0.03125, 0.09375, 0.1875, 0.3125 → three skips. Γ = 2 → r̂Γ = 0.25 > τ → none.
    const tdc = new TemporalDeltaCache(params({ threshold: 0.1875, maxSkips: 16, warmupSteps: 3, finalSteps: 1 }));
    const out = drive(tdc, 12, [
      { gamma: 0.5, drift: constant(0.125) },
      { gamma: 0.25, drift: constant(0.125) },
      { gamma: 2, drift: constant(0.125) },
    ]);
    expect(out).toEqual(['RRRSSRSSRSSR', 'RRRSSSRSSSRR', 'RRRRRRRRRRRR']);
  });

  it('a recompute resets E (a second window skips as long as the first)', () => {
    // Direct calls: after two skips (E = 0.1875 = τ) a third is refused; observe resets E,
    // so the next two skips are allowed again and E climbs from 0.
    const tdc = new TemporalDeltaCache(params({ threshold: 0.1875, maxSkips: 16, warmupSteps: 3, finalSteps: 0 }));
    for (let step = 0; step < 3; step++) {
      tdc.beginCall({ step, steps: 20, sigma: 1 });
      tdc.observe(0, stats(0.5, step === 0 ? null : 0.125));
    }
    const at = (step: number) => (tdc.beginCall({ step, steps: 20, sigma: 1 }), tdc.skip(0));
    expect([at(3), at(4), at(5)]).toEqual([true, true, false]);
    tdc.observe(0, stats(0.5, 0.375)); // ran at step 5, 3 steps after step 2: drift 0.125
    expect([at(6), at(7), at(8)]).toEqual([true, true, false]);
  });

  it('never skips more than maxSkips times in a row', () => {
    const b = [{ gamma: 0.5, drift: constant(0.125) }];
    const p = { threshold: 1e9, warmupSteps: 3, finalSteps: 1 };
    expect(drive(new TemporalDeltaCache(params({ ...p, maxSkips: 1 })), 12, b)).toEqual(['RRRSRSRSRSRR']);
    expect(drive(new TemporalDeltaCache(params({ ...p, maxSkips: 2 })), 12, b)).toEqual(['RRRSSRSSRSSR']);
    expect(drive(new TemporalDeltaCache(params({ ...p, maxSkips: 4 })), 12, b)).toEqual(['RRRSSSSRSSSR']);
  });

  it('asking again after a refusal does not change E', () => {
    // τ = 0.0625 = E₁: one skip, then 0.0625 + 2·0.0625 > τ is refused, however often asked.
    const tdc = new TemporalDeltaCache(params({ threshold: 0.0625, maxSkips: 16, warmupSteps: 3, finalSteps: 0 }));
    for (let step = 0; step < 3; step++) {
      tdc.beginCall({ step, steps: 20, sigma: 1 });
      tdc.observe(0, stats(0.5, step === 0 ? null : 0.125));
    }
    tdc.beginCall({ step: 3, steps: 20, sigma: 1 });
    expect(tdc.skip(0)).toBe(true);
    tdc.beginCall({ step: 4, steps: 20, sigma: 1 });
    expect(tdc.skip(0)).toBe(false);
    expect(tdc.skip(0)).toBe(false);
  });
});

describe('TemporalDeltaCache: the drift', () => {
  it('divides deltaChange by the steps since the block last ran', () => {
    // N_max 1, Γ 0.5, τ 0.0625. Runs 0, 1, 2 report 0.125 each: r₁ = r₂ = 0.125.
    // Step 3: E = 1·0.125·0.5 = 0.0625 ≤ τ → skip. Step 4: N_max reached → run; the block's δ
    // moved 0.25 over the 2 steps since step 2 → r = 0.125 per step, r̂ = 0.125 → step 5 skips.
    // (Undivided, r₁ = 0.25 would give r̂ = 0.25 + 0.125 = 0.375 and E = 0.1875 > τ: a run.)
    const tdc = new TemporalDeltaCache(params({ threshold: 0.0625, maxSkips: 1, warmupSteps: 3, finalSteps: 0 }));
    const reported: (number | null)[] = [];
    const decisions: string[] = [];
    let last = -1;
    const dcs: Record<number, number | null> = { 0: null, 1: 0.125, 2: 0.125, 4: 0.25, 6: 0.25 };
    for (let step = 0; step < 8; step++) {
      tdc.beginCall({ step, steps: 8, sigma: 1 });
      if (last >= 0 && tdc.skip(0)) {
        decisions.push('S');
        continue;
      }
      const dc = step in dcs ? dcs[step] : 0.125 * (step - last);
      reported.push(dc);
      tdc.observe(0, stats(0.5, dc));
      last = step;
      decisions.push('R');
    }
    expect(decisions.join('')).toBe('RRRSRSRS');
    expect(reported).toEqual([null, 0.125, 0.125, 0.25, 0.25]);
  });

  it('extrapolates a rising drift: r̂ = r₁ + (r₁ − r₂)', () => {
    // Observed drifts r₂ = 0.0625 (step 1) then r₁ = 0.125 (step 2): r̂ = 0.125 + 0.0625 = 0.1875;
    // Γ = 0.5: E₁ = 0.09375. τ = 0.09375 skips; τ = 0.09 does not (without extrapolation
    // E₁ would be 0.0625 and τ = 0.09 would skip).
    const run = (threshold: number) => {
      const tdc = new TemporalDeltaCache(params({ threshold, maxSkips: 16, warmupSteps: 3, finalSteps: 0 }));
      [null, 0.0625, 0.125].forEach((dc, step) => {
        tdc.beginCall({ step, steps: 10, sigma: 1 });
        tdc.observe(0, stats(0.5, dc));
      });
      tdc.beginCall({ step: 3, steps: 10, sigma: 1 });
      return tdc.skip(0);
    };
    expect(run(0.09375)).toBe(true);
    expect(run(0.09)).toBe(false);
  });

  it('does not extrapolate a falling drift: r̂ = r₁', () => {
    // r₂ = 0.25 then r₁ = 0.125: r̂ = 0.125 (not r₁ + (r₁ − r₂) = 0, not max = 0.25); Γ = 0.5:
    // E₁ = 0.0625. τ = 0.0625 skips (r̂ = 0.25 would not); τ = 0.06 does not (r̂ = 0 would).
    const run = (threshold: number) => {
      const tdc = new TemporalDeltaCache(params({ threshold, maxSkips: 16, warmupSteps: 3, finalSteps: 0 }));
      [null, 0.25, 0.125].forEach((dc, step) => {
        tdc.beginCall({ step, steps: 10, sigma: 1 });
        tdc.observe(0, stats(0.5, dc));
      });
      tdc.beginCall({ step: 3, steps: 10, sigma: 1 });
      return tdc.skip(0);
    };
    expect(run(0.0625)).toBe(true);
    expect(run(0.06)).toBe(false);
  });

  it('uses the latest two drifts and the latest Γ', () => {
    // Drifts 1 (step 1), 0.0625 (step 2), 0.125 (step 3): the oldest is dropped, r̂ = 0.1875.
    // Γ reported 4 on steps 0-2 and 0.5 on step 3: the latest counts. E₁ = 0.09375.
    const tdc = new TemporalDeltaCache(params({ threshold: 0.09375, maxSkips: 16, warmupSteps: 4, finalSteps: 0 }));
    [null, 1, 0.0625, 0.125].forEach((dc, step) => {
      tdc.beginCall({ step, steps: 10, sigma: 1 });
      tdc.observe(0, stats(step === 3 ? 0.5 : 4, dc));
    });
    tdc.beginCall({ step: 4, steps: 10, sigma: 1 });
    expect(tdc.skip(0)).toBe(true);
  });
});

describe('TemporalDeltaCache: state', () => {
  it('keeps blocks apart and forgets everything on reset()', () => {
    const tdc = new TemporalDeltaCache(params({ threshold: 1e9, maxSkips: 16, warmupSteps: 3, finalSteps: 0 }));
    // Block 0 has run three times, block 1 once.
    for (let step = 0; step < 3; step++) {
      tdc.beginCall({ step, steps: 10, sigma: 1 });
      tdc.observe(0, stats(0.5, step === 0 ? null : 0.125));
      if (step === 2) tdc.observe(1, stats(0.5, null));
    }
    tdc.beginCall({ step: 3, steps: 10, sigma: 1 });
    expect(tdc.skip(0)).toBe(true);
    expect(tdc.skip(1)).toBe(false);
    tdc.reset();
    tdc.beginCall({ step: 3, steps: 10, sigma: 1 });
    expect(tdc.skip(0)).toBe(false);
  });

  it('runs with the manifest defaults through the SkipPolicy interface, reading no signal', () => {
    const tdc = new TemporalDeltaCache(params({}));
    expect(tdc.id).toBe(deltaCacheManifest.id);
    // drive() passes signals that throw when read.
    const out = drive(tdc, 30, [{ gamma: 0.1, drift: constant(0.0625) }]);
    // Defaults: τ 0.06, N_max 2, warm-up 4, final 1. r̂Γ = 0.00625: E₁ = 0.00625, E₂ = 0.01875 ≤ τ,
    // so N_max is the limit: steps 0-3 run, then (S S R) for steps 4-27, step 28 skips (after
    // the run at 27), step 29 is the final one.
    expect(out).toEqual(['RRRR' + 'SSR'.repeat(8) + 'SR']);
  });
});
