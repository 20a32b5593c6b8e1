import { describe, expect, it } from 'vitest';

import { Tensor } from '../tensor/index.js';
import { gatherRows, referenceRows, sampleQueryRows } from './reference.js';

function tensor(shape: number[], fill: (i: number) => number): Tensor<'F32'> {
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor('F32', shape, Float32Array.from({ length: n }, (_, i) => fill(i)));
}

describe('float64 attention reference on sampled rows', () => {
  it('averages V with softmax weights: equal scores give the mean of the visible values', () => {
    const q = tensor([1, 1, 3, 2], () => 0);
    const k = tensor([1, 1, 3, 2], (i) => i);
    const v = tensor([1, 1, 3, 2], (i) => [1, 10, 2, 20, 6, 60][i]);
    const rows = sampleQueryRows({ q, k, v }, 3);
    const full = referenceRows({ q, k, v }, rows).values;
    expect([...full.slice(0, 2)]).toEqual([3, 30]);
    const causal = referenceRows({ q, k, v, causal: true }, rows).values;
    expect([...causal]).toEqual([1, 10, 1.5, 15, 3, 30]);
  });

  it('maps query heads to kv heads for GQA and honours masks, NHD like HND', () => {
    const q = tensor([1, 4, 2, 2], (i) => Math.sin(i));
    const k = tensor([1, 2, 2, 2], (i) => Math.cos(i));
    const v = tensor([1, 2, 2, 2], (i) => i);
    const rows = sampleQueryRows({ q, k, v }, 2);
    const mask = new Tensor('U8', [1, 1, 2, 2], Uint8Array.from([1, 0, 0, 0]));
    const masked = referenceRows({ q, k, v, mask }, rows).values;
    // Row 0 sees only key 0; row 1 sees nothing and stays 0. Heads 2 and 3 read kv head 1.
    expect([...masked.slice(0, 4)]).toEqual([0, 1, 0, 0]);
    expect([...masked.slice(8, 10)]).toEqual([4, 5]);
    const toNhd = (t: Tensor<'F32'>) => {
      const [b, h, n, d] = t.shape;
      const out = new Float32Array(t.numel);
      for (let hh = 0; hh < h; hh += 1) for (let i = 0; i < n; i += 1) for (let c = 0; c < d; c += 1) out[(i * h + hh) * d + c] = t.data[(hh * n + i) * d + c];
      return new Tensor('F32', [b, n, h, d], out);
    };
    const hnd = referenceRows({ q, k, v }, rows).values;
    const nhd = referenceRows({ q: toNhd(q), k: toNhd(k), v: toNhd(v), layout: 'NHD' }, rows).values;
    expect([...nhd]).toEqual([...hnd]);
    expect([...gatherRows(toNhd(q), 'NHD', rows)]).toEqual([...gatherRows(q, 'HND', rows)]);
  });
});
