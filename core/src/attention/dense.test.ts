import { describe, expect, it } from 'vitest';

import { SlipstreamError } from '../errors/index.js';
import { Tensor } from '../tensor/index.js';
import { attnBlockSparse, attnBlockSparseSync, attnDense, attnDenseSync } from './index.js';

function rand(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  });
}

/** Float64 naive softmax(scale QKᵀ)V in HND, causal bottom-right aligned; returns out and lse. */
function reference(q: number[], k: number[], v: number[], B: number, Hq: number, Hk: number, Nq: number, Nk: number, D: number, causal: boolean) {
  const out = new Float64Array(B * Hq * Nq * D);
  const lse = new Float64Array(B * Hq * Nq);
  const scale = 1 / Math.sqrt(D);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / (Hq / Hk));
      for (let i = 0; i < Nq; i++) {
        const s: number[] = [];
        for (let j = 0; j < Nk; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[((b * Hq + h) * Nq + i) * D + d]! * k[((b * Hk + hk) * Nk + j) * D + d]!;
          s.push(causal && j > i + Nk - Nq ? -Infinity : dot * scale);
        }
        const m = Math.max(...s);
        const row = (b * Hq + h) * Nq + i;
        if (m === -Infinity) { lse[row] = -Infinity; continue; }
        const p = s.map((x) => Math.exp(x - m));
        const l = p.reduce((a, x) => a + x, 0);
        lse[row] = m + Math.log(l);
        for (let d = 0; d < D; d++) {
          let acc = 0;
          for (let j = 0; j < Nk; j++) acc += p[j]! * v[((b * Hk + hk) * Nk + j) * D + d]!;
          out[row * D + d] = acc / l;
        }
      }
    }
  return { out, lse };
}

// Shapes small enough for a JS reference: GQA (4 query heads on 2 kv heads), Nq != Nk so the
// causal offset matters, D = 40 (not a multiple of a vector). Values in [-1, 1), so Σ π|v| <= 1
// and the bound of native/test/test-attention-dense.cpp, (2E + (2Nk + 2Nk/64 + 12)u)·Σ π|v| with
// E <= (D + 6)·u·scale·Σ|q k| <= 46·sqrt(40)·u, is at most ~780·2^-24 = 4.7e-5 (LSE: less).
const [B, Hq, Hk, Nq, Nk, D] = [2, 4, 2, 30, 90, 40];
const qv = rand(B * Hq * Nq * D, 1), kv = rand(B * Hk * Nk * D, 2), vv = rand(B * Hk * Nk * D, 3);
const q = Tensor.fromArray('F32', [B, Hq, Nq, D], qv);
const k = Tensor.fromArray('F32', [B, Hk, Nk, D], kv);
const v = Tensor.fromArray('F32', [B, Hk, Nk, D], vv);
const TOL = 5e-5;

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;  // equal infinities
    m = Math.max(m, Math.abs(a[i]! - b[i]!));
  }
  return m;
}

function thrown(f: () => unknown): SlipstreamError {
  try { f(); } catch (e) { return e as SlipstreamError; }
  throw new Error('expected a throw');
}

describe('attnDense', () => {
  for (const causal of [false, true]) {
    it(`matches a float64 reference (causal ${causal}), with LSE`, async () => {
      const ref = reference(qv, kv, vv, B, Hq, Hk, Nq, Nk, D, causal);
      const r = await attnDense(q, k, v, { causal, returnLse: true });
      expect(r.out.shape).toEqual([B, Hq, Nq, D]);
      expect(maxDiff(r.out.data as Float32Array, ref.out)).toBeLessThan(TOL);
      expect(maxDiff(r.lse!.data as Float32Array, ref.lse)).toBeLessThan(TOL);
      const s = attnDenseSync(q, k, v, { causal, returnLse: true });
      expect(s.out.data).toEqual(r.out.data);
    });
  }

  it('gives -inf LSE and zero rows where causality allows nothing (Nq > Nk)', () => {
    // Nq = 6, Nk = 2: query i attends j <= i - 4, so rows 0..3 attend nothing.
    const qq = Tensor.fromArray('F32', [1, 1, 6, D], qv.slice(0, 6 * D));
    const kk = Tensor.fromArray('F32', [1, 1, 2, D], kv.slice(0, 2 * D));
    const r = attnDenseSync(qq, kk, kk, { causal: true, returnLse: true });
    const lse = r.lse!.data as Float32Array;
    expect([...lse.slice(0, 4)]).toEqual([-Infinity, -Infinity, -Infinity, -Infinity]);
    expect(Number.isFinite(lse[4]!) && Number.isFinite(lse[5]!)).toBe(true);
    expect((r.out.data as Float32Array).slice(0, 4 * D).every((x) => x === 0)).toBe(true);
  });

  it('names the argument on bad input', () => {
    const f64 = Tensor.zeros('F64', [B, Hq, Nq, D]);
    expect(thrown(() => attnDenseSync(f64, k, v)).message).toMatch(/for q/);
    const kBad = Tensor.zeros('F32', [B, Hk, Nk, D + 1]);
    expect(thrown(() => attnDenseSync(q, kBad, v)).message).toMatch(/expected .* for k, got/);
    const big = Tensor.zeros('F32', [1, 1, 2, 300]);
    expect(thrown(() => attnDenseSync(big, big, big)).message).toMatch(/head dim/);
    expect(thrown(() => attnDenseSync(q, k, v, { layout: 'XYZ' as 'HND' })).message).toMatch(/options\.layout/);
    expect(thrown(() => attnDenseSync(q, k, v, { mask: Tensor.zeros('I32', [1, 1, Nq, Nk]) })).message).toMatch(/options\.mask/);
    const nan = Tensor.fromArray('F32', [1, 1, Nq, Nk], new Array(Nq * Nk).fill(Number.NaN));
    expect(thrown(() => attnDenseSync(q, k, v, { mask: nan })).code).toBe('SLIP_E_NON_FINITE');
  });
});

describe('attnBlockSparse', () => {
  it('equals causal dense with every block kept, and reports the density', async () => {
    const dense = attnDenseSync(q, k, v, { causal: true });
    const nqb = Math.ceil(Nq / 64), nkb = Math.ceil(Nk / 64);
    const keep = Tensor.fromArray('U8', [B, Hq, nqb, nkb], new Array(B * Hq * nqb * nkb).fill(1));
    const r = await attnBlockSparse(q, k, v, keep, 64, 64, { causal: true });
    expect(r.out.data).toEqual(dense.out.data);
    expect(r.density).toBe(1);
  });

  it('refuses a block mask of the wrong shape or dtype, naming it', () => {
    const keep = Tensor.zeros('U8', [B, Hq, 1, 1]);
    expect(thrown(() => attnBlockSparseSync(q, k, v, keep, 16, 16)).message).toMatch(/for block_mask/);
    expect(thrown(() => attnBlockSparseSync(q, k, v, Tensor.zeros('F32', [1]), 16, 16)).message).toMatch(/for blockMask/);
    expect(thrown(() => attnBlockSparseSync(q, k, v, keep, 0, 16)).message).toMatch(/for blockQ/);
  });
});
