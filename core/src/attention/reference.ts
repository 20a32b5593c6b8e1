/**
 * Exact float64 attention on sampled query rows: what `slipstream attention` and the attention
 * benchmark measure every method against. A full float64 reference at 16K+ tokens would take
 * minutes in JS; softmax rows are independent, so rows spread over the sequence measure the same
 * error distribution at a fraction of the cost (all rows when `rowsPerHead` >= N).
 *
 * Conventions as slipstream.h: HND [B, H, N, D] or NHD [B, N, H, D]; GQA (query head h reads kv
 * head h / (Hq/Hk)); causal aligned to the bottom right; masks U8 (1 = attend) or F32 (added),
 * broadcast over batch and heads.
 */
import { SlipstreamError } from '../errors/index.js';
import type { Tensor } from '../tensor/index.js';

export interface ReferenceProblem {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  mask?: Tensor;
  layout?: 'HND' | 'NHD';
  causal?: boolean;
  scale?: number;
}

export interface SampledRows {
  /** (batch, head, query index) of each sampled row. */
  rows: [number, number, number][];
  headDim: number;
  /** rows.length × D exact outputs. */
  values: Float64Array;
}

function dims(t: Tensor, layout: 'HND' | 'NHD') {
  const [b, a, c, d] = t.shape;
  return layout === 'HND' ? { b, h: a, n: c, d } : { b, h: c, n: a, d };
}

function offset(layout: 'HND' | 'NHD', x: { h: number; n: number; d: number }, b: number, h: number, i: number): number {
  return layout === 'HND' ? ((b * x.h + h) * x.n + i) * x.d : ((b * x.n + i) * x.h + h) * x.d;
}

function f32(t: Tensor, name: string): Float32Array {
  if (t.dtype !== 'F32') throw new SlipstreamError('SLIP_E_DTYPE_MISMATCH', `expected F32 for ${name}, got ${t.dtype}`);
  return t.data as Float32Array;
}

export function sampleQueryRows(p: ReferenceProblem, rowsPerHead: number): [number, number, number][] {
  const layout = p.layout ?? 'HND';
  const q = dims(p.q, layout);
  const count = Math.min(rowsPerHead, q.n);
  const picks = Array.from({ length: count }, (_, i) => Math.round((i * (q.n - 1)) / Math.max(1, count - 1)));
  const rows: [number, number, number][] = [];
  for (let b = 0; b < q.b; b += 1) for (let h = 0; h < q.h; h += 1) for (const i of picks) rows.push([b, h, i]);
  return rows;
}

export function referenceRows(p: ReferenceProblem, rows: [number, number, number][]): SampledRows {
  const layout = p.layout ?? 'HND';
  const qd = dims(p.q, layout);
  const kd = dims(p.k, layout);
  const q = f32(p.q, 'q');
  const k = f32(p.k, 'k');
  const v = f32(p.v, 'v');
  const scale = p.scale ?? 1 / Math.sqrt(qd.d);
  const group = qd.h / kd.h;
  const mask = p.mask;
  const s = new Float64Array(kd.n);
  const values = new Float64Array(rows.length * qd.d);
  rows.forEach(([b, h, i], r) => {
    const hk = Math.floor(h / group);
    const qo = offset(layout, qd, b, h, i);
    const limit = p.causal ? Math.min(kd.n - 1, i + kd.n - qd.n) : kd.n - 1;
    let max = -Infinity;
    for (let j = 0; j < kd.n; j += 1) {
      let score = -Infinity;
      if (j <= limit) {
        let dot = 0;
        const ko = offset(layout, kd, b, hk, j);
        for (let c = 0; c < qd.d; c += 1) dot += q[qo + c] * k[ko + c];
        score = dot * scale;
        if (mask) {
          const [mb, mh] = mask.shape;
          const mo = (((mb === 1 ? 0 : b) * mh + (mh === 1 ? 0 : h)) * qd.n + i) * kd.n + j;
          const m = Number(mask.data[mo]);
          score = mask.dtype === 'U8' ? (m ? score : -Infinity) : score + m;
        }
      }
      s[j] = score;
      if (score > max) max = score;
    }
    if (max === -Infinity) return; // nothing to attend: the output row is 0
    let sum = 0;
    for (let j = 0; j < kd.n; j += 1) {
      s[j] = s[j] === -Infinity ? 0 : Math.exp(s[j] - max);
      sum += s[j];
    }
    for (let j = 0; j < kd.n; j += 1) {
      if (s[j] === 0) continue;
      const w = s[j] / sum;
      const vo = offset(layout, kd, b, hk, j);
      for (let c = 0; c < qd.d; c += 1) values[r * qd.d + c] += w * v[vo + c];
    }
  });
  return { rows, headDim: qd.d, values };
}

/** The same rows taken out of a method's output (layout as the query's). */
export function gatherRows(out: Tensor, layout: 'HND' | 'NHD', rows: [number, number, number][]): Float64Array {
  const od = dims(out, layout);
  const o = f32(out, 'out');
  const values = new Float64Array(rows.length * od.d);
  rows.forEach(([b, h, i], r) => {
    const oo = offset(layout, od, b, h, i);
    for (let c = 0; c < od.d; c += 1) values[r * od.d + c] = o[oo + c];
  });
  return values;
}
