import { describe, expect, it } from 'vitest';

import { SlipstreamError } from '../errors/index.js';
import { Tensor } from '../tensor/index.js';
import { attnDenseSync, attnSparse, attnSparsePredict, attnSparseSync } from './index.js';

/** Uniform in [-1, 1), deterministic (mulberry32). */
function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  });
}

const U32 = 2 ** -24;  // FP32 unit roundoff

// GQA, causal with Nq != Nk, lengths not multiples of the blocks, head dim 40.
const B = 1, Hq = 4, Hk = 2, Nq = 70, Nk = 90, D = 40;
const q = new Tensor('F32', [B, Hq, Nq, D], rand(B * Hq * Nq * D, 1));
const k = new Tensor('F32', [B, Hk, Nk, D], rand(B * Hk * Nk * D, 2));
const v = new Tensor('F32', [B, Hk, Nk, D], rand(B * Hk * Nk * D, 3));

describe('attnSparse', () => {
  it('keeps every allowed block with topk 1 and then matches dense attention', () => {
    const sparse = { blockQ: 16, blockK: 16, topk: 1 };
    const r = attnSparseSync(q, k, v, { causal: true }, sparse);
    expect(r.sparsity).toBe(0);
    expect(r.blockMask.shape).toEqual([1, 4, 5, 6]);
    const d = attnDenseSync(q, k, v, { causal: true });
    // Each FP32 result is within (4·D·u·smax + (Nk + 2)·u)·max|v| of the exact one (scores to
    // D·u·smax, softmax to twice that, the P·V sum to Nk·u); smax = scale·Σ|q_d k_d| <= sqrt(D)
    // for entries in [-1, 1], max|v| <= 1; so the two differ by at most twice that.
    const bound = 2 * (4 * D * U32 * Math.sqrt(D) + (Nk + 2) * U32);
    let err = 0;
    for (let i = 0; i < d.out.numel; i++) err = Math.max(err, Math.abs(r.out.data[i]! - d.out.data[i]!));
    expect(err).toBeLessThanOrEqual(bound);
  });

  it('is never sparser with Top-k ∪ Top-p than with either rule alone', () => {
    for (let seed = 0; seed < 6; seed++) {
      const qq = new Tensor('F32', [1, 2, 100, 8], rand(1600, 10 + seed));
      const kk = new Tensor('F32', [1, 2, 100, 8], rand(1600, 20 + seed));
      const base = { blockQ: 8, blockK: 8, simThreshold: -1 };
      const a = attnSparsePredict(qq, kk, {}, { ...base, topk: 0.2 });
      const p = attnSparsePredict(qq, kk, {}, { ...base, topk: 0, topp: 0.6 });
      const h = attnSparsePredict(qq, kk, {}, { ...base, topk: 0.2, topp: 0.6 });
      for (let i = 0; i < h.blockMask.numel; i++) expect(h.blockMask.data[i]).toBe(a.blockMask.data[i]! | p.blockMask.data[i]!);
      expect(h.sparsity).toBeLessThanOrEqual(Math.min(a.sparsity, p.sparsity));
    }
  });

  it('runs on the pool and returns the mask it used', async () => {
    const r = await attnSparse(q, k, v, { returnLse: true }, { blockQ: 32, blockK: 16, topk: 0.5 });
    expect(r.lse?.shape).toEqual([1, 4, 70]);
    const p = attnSparsePredict(q, k, {}, { blockQ: 32, blockK: 16, topk: 0.5 });
    expect([...r.blockMask.data]).toEqual([...p.blockMask.data]);
    expect(r.sparsity).toBeCloseTo(p.sparsity, 15);
    expect(r.sparsity).toBeGreaterThan(0.3);
  });

  it('refuses bad input with a sentence naming the argument', () => {
    const err = (f: () => unknown) => { try { f(); } catch (e) { return e as SlipstreamError; } throw new Error('no error'); };
    expect(err(() => attnSparseSync(q, k, v, {}, { topk: 1.5 })).message).toMatch(/invalid sparse\.topk/);
    const both = err(() => attnSparseSync(q, k, v, {}, { topk: 0, topp: 0 }));
    expect(both.code).toBe('SLIP_E_INVALID_ARGUMENT');
    expect(both.message).toMatch(/expected sparse\.topk > 0 or sparse\.topp > 0/);
    expect(err(() => attnSparseSync(q, k, v, {}, { blockQ: 0 })).message).toMatch(/invalid sparse\.blockQ/);
    expect(err(() => attnSparsePredict(new Tensor('I32', [1], new Int32Array(1)), k)).message).toMatch(/expected an F32 Tensor for q/);
    const shape = err(() => attnSparseSync(q, new Tensor('F32', [1, 3, 90, 40], rand(10800, 4)), v));
    expect(shape.code).toBe('SLIP_E_SHAPE_MISMATCH');
    expect(err(() => attnSparseSync(q, k, v, { causal: 1 as unknown as boolean })).message).toMatch(/invalid options\.causal/);
    const cu = new Tensor('I32', [2], new Int32Array([0, 70]));
    expect(err(() => attnSparseSync(q, k, v, { cuSeqlens: { q: cu, k: cu } })).message).toMatch(/expected no options\.cuSeqlens for attnSparse/);
  });
});
