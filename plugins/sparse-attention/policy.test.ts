import { describe, expect, it } from 'vitest';

import { sparseAttentionManifest } from './manifest.js';
import { SparseAttention } from './policy.js';

const call = (step: number, steps = 11) => ({ step, steps, sigma: 1 - step / steps });

describe('SparseAttention', () => {
  it('keeps attention dense in the first blocks and outside the step window', () => {
    // progress = step / (steps − 1): steps 0..10 are 0, 0.1, …, 1.
    const p = new SparseAttention(
      sparseAttentionManifest.params.parse({ topk: 0.3, startPercent: 0.2, endPercent: 0.8, denseBlocks: 2, precision: 'fp32' }),
    );
    expect(p.options(1, call(5))).toEqual({});
    expect(p.options(2, call(1))).toEqual({});
    expect(p.options(2, call(2))).toEqual({ sparseTopk: 0.3, sparseTopp: 0 });
    expect(p.options(7, call(8))).toEqual({ sparseTopk: 0.3, sparseTopp: 0 });
    expect(p.options(7, call(9))).toEqual({});
  });

  it('refuses parameters that would mean dense attention or are out of range', () => {
    expect(() => sparseAttentionManifest.params.parse({ topk: 0, topp: 0 })).toThrow(/topk or topp above 0/);
    expect(() => sparseAttentionManifest.params.parse({ topk: 1.5 })).toThrow();
    expect(() => sparseAttentionManifest.params.parse({ blocks: 1 })).toThrow();
    expect(sparseAttentionManifest.params.parse({})).toEqual({ topk: 0.5, topp: 0, startPercent: 0.2, endPercent: 1, denseBlocks: 1, precision: 'int8' });
    expect(() => sparseAttentionManifest.params.parse({ precision: 'fp8' })).toThrow();
  });

  it('runs low-bit attention in every block and step when precision is int8, sparse only in the window', () => {
    const p = new SparseAttention(sparseAttentionManifest.params.parse({ topk: 0.3, startPercent: 0.2, denseBlocks: 2 }));
    expect(p.options(1, call(5))).toEqual({ lowBitAttention: true });
    expect(p.options(2, call(0))).toEqual({ lowBitAttention: true });
    expect(p.options(2, call(5))).toEqual({ sparseTopk: 0.3, sparseTopp: 0, lowBitAttention: true });
  });
});
