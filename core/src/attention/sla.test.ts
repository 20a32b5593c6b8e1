import { describe, expect, it } from 'vitest';

import { SlipstreamError } from '../errors/index.js';
import { Tensor } from '../tensor/index.js';
import { attnBlockSparseSync, slaBackward, slaBackwardSync, slaForward, slaForwardSync, slaRoute } from './index.js';

function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  });
}

const U32 = 2 ** -24;
const Hq = 4, Hk = 2, Nq = 37, Nk = 45, D = 40;
const q = new Tensor('F32', [1, Hq, Nq, D], rand(Hq * Nq * D, 1));
const k = new Tensor('F32', [1, Hk, Nk, D], rand(Hk * Nk * D, 2));
const v = new Tensor('F32', [1, Hk, Nk, D], rand(Hk * Nk * D, 3));
const sla = { blockQ: 8, blockK: 8, critical: 0.34, negligible: 0.33 };  // 6 key blocks: 2 / 2 / 2

describe('SLA2', () => {
  it('routes floor(critical·nKb) blocks per row to the softmax branch', () => {
    const { route, sparsity } = slaRoute(q, k, {}, sla);
    expect(route.shape).toEqual([1, Hq, 5, 6]);
    for (let row = 0; row < Hq * 5; row++) {
      const counts = [0, 0, 0];
      for (let kb = 0; kb < 6; kb++) counts[route.data[row * 6 + kb]!]!++;
      expect(counts).toEqual([1, 3, 2]);
    }
    expect(sparsity).toBeCloseTo(1 - 2 / 6, 12);
  });

  it('with α = 1 is sparse attention over the critical blocks', async () => {
    const { route } = slaRoute(q, k, {}, sla);
    const weights = { alpha: new Tensor('F32', [Hq], new Float32Array(Hq).fill(1)), projW: new Tensor('F32', [D, D], rand(D * D, 5)) };
    const out = await slaForward(q, k, v, route, weights, {}, sla);
    const mask = new Tensor('U8', route.shape, route.data.map((x) => (x === 2 ? 1 : 0)));
    const ref = attnBlockSparseSync(q, k, v, mask, 8, 8);
    // Both within (4·D·u·sqrt(D) + (Nk + 2)·u)·max|v| of exact softmax attention (see sparse.test.ts).
    const bound = 2 * (4 * D * U32 * Math.sqrt(D) + (Nk + 2) * U32);
    for (let i = 0; i < out.numel; i++) expect(Math.abs(out.data[i]! - ref.out.data[i]!)).toBeLessThanOrEqual(bound);
  });

  it('gives dα = Σ Oˢ·dout and dbp = Σ (1 − α)·dout when Wp = 0 (SLA\'s initialisation)', async () => {
    const { route } = slaRoute(q, k, {}, sla);
    const alpha = new Tensor('F32', [Hq], Float32Array.from([0.2, 0.4, 0.6, 0.8]));
    const weights = { alpha, projW: Tensor.zeros('F32', [D, D]), projB: Tensor.zeros('F32', [D]) };
    const out = slaForwardSync(q, k, v, route, weights, {}, sla);  // = α·Oˢ
    const dout = new Tensor('F32', q.shape, rand(q.numel, 6));
    const g = await slaBackward(q, k, v, route, weights, dout, {}, sla);
    const per = Nq * D;
    for (let h = 0; h < Hq; h++) {
      let want = 0, mag = 0;
      for (let i = h * per; i < (h + 1) * per; i++) {
        want += (out.data[i]! / alpha.data[h]!) * dout.data[i]!;
        mag += Math.abs(out.data[i]! / alpha.data[h]! * dout.data[i]!);
      }
      // out carries one FP32 rounding per element, /α another: 2u·Σ|Oˢ·dout|, plus dα's own u.
      expect(Math.abs(g.dalpha.data[h]! - want)).toBeLessThanOrEqual(3 * U32 * mag + 1e-12);
    }
    for (let d = 0; d < D; d++) {
      let want = 0;
      for (let h = 0; h < Hq; h++) for (let i = 0; i < Nq; i++) want += (1 - alpha.data[h]!) * dout.data[(h * Nq + i) * D + d]!;
      expect(Math.abs(g.dprojB!.data[d]! - want)).toBeLessThanOrEqual(4 * U32 * Hq * Nq);
    }
    const sync = slaBackwardSync(q, k, v, route, weights, dout, {}, sla);
    expect([...sync.dq.data]).toEqual([...g.dq.data]);
  });

  it('refuses bad input with a sentence naming the argument', () => {
    const err = (f: () => unknown) => { try { f(); } catch (e) { return e as SlipstreamError; } throw new Error('no error'); };
    const { route } = slaRoute(q, k, {}, sla);
    const weights = { alpha: new Tensor('F32', [Hq], new Float32Array(Hq)), projW: Tensor.zeros('F32', [D, D]) };
    const causal = err(() => slaForwardSync(q, k, v, route, weights, { causal: true }, sla));
    expect(causal.code).toBe('SLIP_E_UNSUPPORTED');
    expect(causal.message).toMatch(/expected no causal/);
    expect(err(() => slaRoute(q, k, {}, { featureMap: 'tanh' as 'relu' })).message).toMatch(/invalid sla\.featureMap/);
    expect(err(() => slaRoute(q, k, {}, { critical: 0.5, negligible: 0.8 })).message).toMatch(/for sla\.negligible, got 0\.8/);
    const a3 = { ...weights, alpha: new Tensor('F32', [3], new Float32Array(3)) };
    const shape = err(() => slaForwardSync(q, k, v, route, a3, {}, sla));
    expect(shape.code).toBe('SLIP_E_SHAPE_MISMATCH');
    expect(shape.message).toMatch(/alpha/);
    expect(err(() => slaForwardSync(q, k, v, new Tensor('F32', [1], new Float32Array(1)), weights, {}, sla)).message).toMatch(/expected a U8 Tensor for route/);
    const bad = new Tensor('U8', route.shape, route.data.map(() => 5));
    expect(err(() => slaForwardSync(q, k, v, bad, weights, {}, sla)).message).toMatch(/expected slip_sla_route values/);
    expect(err(() => slaRoute(q, k, {}, sla, { wq: Tensor.zeros('F32', [3, 3]) })).message).toMatch(/router_wq/);
  });
});
