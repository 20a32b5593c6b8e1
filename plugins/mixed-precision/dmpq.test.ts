/**
 * DMPQ routing: a block runs INT8 when its Γ at the previous run is above the threshold or unknown,
 * NVFP4 when at or below; fixed routes ignore Γ.
 */
import { describe, expect, it } from 'vitest';

import type { BlockStats, CallInfo } from '../../core/src/runtime/index.js';
import type { PrecisionPolicy } from '../policy.js';
import { MixedPrecision } from './dmpq.js';
import { mixedPrecisionManifest } from './manifest.js';

function stats(gamma: number): BlockStats {
  return { inputL1: 1, deltaL1: gamma, gamma, deltaChange: null, maxOutlier: 1, fullLinears: 0, lowbitLinears: 1, attentionSparsity: 0 };
}

const call: CallInfo = { step: 3, steps: 10, sigma: 0.7 };

function policy(route: 'dmpq' | 'int8' | 'nvfp4' | 'bf16' | 'full', threshold: number): PrecisionPolicy {
  return new MixedPrecision(mixedPrecisionManifest.params.parse({ route }), threshold);
}

describe('MixedPrecision', () => {
  it('routes a block with no Γ yet to INT8 (the safe side)', () => {
    const p = policy('dmpq', 0.25);
    expect(p.id).toBe(mixedPrecisionManifest.id);
    expect(p.choose(0, call)).toEqual({ precision: 'int8' });
    expect(p.choose(7, call)).toEqual({ precision: 'int8' });
  });

  it('routes by the last Γ: above the threshold INT8, at or below NVFP4', () => {
    const p = policy('dmpq', 0.25);
    p.observe(0, stats(0.3));
    p.observe(1, stats(0.25));
    p.observe(2, stats(0.1));
    p.observe(3, stats(0.25000001));
    expect([0, 1, 2, 3].map((b) => p.choose(b, call).precision)).toEqual(['int8', 'nvfp4', 'nvfp4', 'int8']);
    // A block not observed yet stays INT8 although its neighbours are known.
    expect(p.choose(4, call).precision).toBe('int8');
  });

  it('follows the latest observation of each block', () => {
    const p = policy('dmpq', 0.25);
    p.observe(0, stats(0.1));
    expect(p.choose(0, call).precision).toBe('nvfp4');
    p.observe(0, stats(0.5));
    expect(p.choose(0, call).precision).toBe('int8');
    p.observe(0, stats(0));
    expect(p.choose(0, call).precision).toBe('nvfp4');
  });

  it('a threshold of 0 sends only Γ = 0 to NVFP4', () => {
    const p = policy('dmpq', 0);
    p.observe(0, stats(0));
    p.observe(1, stats(1e-9));
    expect([p.choose(0, call).precision, p.choose(1, call).precision]).toEqual(['nvfp4', 'int8']);
  });

  it('forgets every Γ on reset()', () => {
    const p = policy('dmpq', 0.25);
    p.observe(0, stats(0.1));
    p.reset();
    expect(p.choose(0, call).precision).toBe('int8');
  });

  it('fixed routes ignore Γ and the threshold', () => {
    for (const route of ['int8', 'nvfp4', 'bf16', 'full'] as const) {
      const p = policy(route, 0.25);
      expect(p.choose(0, call)).toEqual({ precision: route });
      p.observe(0, stats(0.01));
      p.observe(1, stats(10));
      expect(p.choose(0, call)).toEqual({ precision: route });
      expect(p.choose(1, call)).toEqual({ precision: route });
    }
  });

  it('returns a fresh options object per call (the runner adds outlierGuard to it)', () => {
    const p = policy('dmpq', 0.25);
    const a = p.choose(0, call);
    a.outlierGuard = 25;
    a.precision = 'full';
    expect(p.choose(0, call)).toEqual({ precision: 'int8' });
    const f = policy('nvfp4', 0);
    const b = f.choose(0, call);
    b.precision = 'int8';
    expect(f.choose(0, call)).toEqual({ precision: 'nvfp4' });
  });
});
