import { describe, expect, it } from 'vitest';

import { SlipstreamError } from '../errors/index.js';
import { Tensor } from '../tensor/index.js';
import {
  decodeElements,
  dequantize,
  dequantizeSync,
  encodeElements,
  hadamard,
  packIntCT,
  packNibbles,
  quantize,
  quantizeSync,
  unpackIntCT,
  unpackNibbles,
  type ElementFormat,
} from './index.js';

// Finite codes of each format (both signs): they must survive decode -> encode unchanged.
const FINITE: Record<Exclude<ElementFormat, 'E8M0'>, number[]> = {
  E4M3: [...Array(256).keys()].filter((c) => (c & 0x7f) !== 0x7f),
  E5M2: [...Array(256).keys()].filter((c) => (c & 0x7f) < 0x7c),
  E2M1: [...Array(16).keys()],
};

/** Deterministic Gaussian data with outliers (mulberry32 + Box-Muller). */
function outlierData(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const g = Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    const r = rand();
    x[i] = r < 0.01 ? g * 2 ** (6 + Math.floor(rand() * 5)) : r < 0.02 ? 0 : g;
  }
  return x;
}

// Float64 references of E2M1 and E4M3 by enumeration: nearest magnitude, ties to the even code.
const E2M1 = [0, 0.5, 1, 1.5, 2, 3, 4, 6];
const E4M3 = [...Array(127).keys()].map((c) => {
  const e = c >> 3, m = c & 7;
  return e === 0 ? m * 2 ** -9 : (1 + m / 8) * 2 ** (e - 7);
});
function nearest(table: number[], x: number, signBit: number): number {
  const a = Math.min(Math.abs(x), table[table.length - 1]!);
  let best = 0;
  for (let c = 1; c < table.length; c++) {
    const dc = Math.abs(table[c]! - a), db = Math.abs(table[best]! - a);
    if (dc < db || (dc === db && c % 2 === 0)) best = c;
  }
  return (x < 0 || Object.is(x, -0) ? signBit : 0) | best;
}
const f32 = Math.fround;

describe('element codecs', () => {
  for (const [format, codes] of Object.entries(FINITE) as [keyof typeof FINITE, number[]][]) {
    it(`round-trips every finite ${format} code`, () => {
      const values = decodeElements(format, Uint8Array.from(codes));
      expect([...encodeElements(format, values)]).toEqual(codes);
    });
  }

  it('matches the enumerated E4M3 reference on random data', () => {
    const x = outlierData(20000, 3).map((v) => v * 37);
    const got = encodeElements('E4M3', x);
    x.forEach((v, i) => expect(got[i]).toBe(nearest(E4M3, v, 0x80)));
  });

  it('rounds stochastically without bias and reproducibly', () => {
    const x = new Float32Array(200000).fill(2.7); // between 2 and 3 in E2M1
    const a = encodeElements('E2M1', x, { rounding: 'stochastic', seed: 5 });
    expect(encodeElements('E2M1', x, { rounding: 'stochastic', seed: 5 })).toEqual(a);
    const mean = decodeElements('E2M1', a).reduce((s, v) => s + v, 0) / x.length;
    expect(Math.abs(mean - f32(2.7))).toBeLessThan(4 * Math.sqrt(0.7 * 0.3 / x.length));
  });

  it('packs nibbles and CT int words', () => {
    const codes = Uint8Array.from([1, 2, 15, 0]);
    expect([...packNibbles(codes)]).toEqual([0x21, 0x0f]);
    expect(unpackNibbles(packNibbles(codes))).toEqual(codes);
    const v = Int8Array.from([-8, 7, 0, 1, -1, 2, 3, 4, 5]);
    const words = packIntCT(v, 1, 9, 4);
    expect(words.length).toBe(2);
    expect(words[0]! & 0xf).toBe(0); // -8 + 8
    expect(unpackIntCT(words, 1, 9, 4)).toEqual(v);
  });

  it('refuses bad input with a clear sentence', () => {
    expect(() => encodeElements('E2M1', Float32Array.of(NaN))).toThrow(/NaN at index 0/);
    expect(() => encodeElements('E3M4' as ElementFormat, new Float32Array(1))).toThrow(SlipstreamError);
    expect(() => packNibbles(Uint8Array.of(1, 2, 3))).toThrow(/even count for n/);
    expect(() => decodeElements('E4M3', [1, 2] as unknown as Uint8Array)).toThrow(/expected a Uint8Array for codes/);
  });
});

describe('quantize', () => {
  it('matches a float64 NVFP4 reference bit for bit', async () => {
    const rows = 9, k = 64;
    const x = new Tensor('F32', [rows, k], outlierData(rows * k, 17));
    const q = await quantize(x, 'NVFP4');
    let amax = 0;
    for (const v of x.data) amax = Math.max(amax, Math.abs(v));
    const g = f32(2688 / amax);
    expect(q.global!.data[0]).toBe(g);
    const deq = await dequantize(q, x.shape);
    for (let b = 0; b < (rows * k) / 16; b++) {
      const xb = x.data.subarray(b * 16, b * 16 + 16);
      const a16 = xb.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const sc = nearest(E4M3, f32(g * f32(a16 / 6)), 0x80);
      const s = sc === 0 ? 0.125 : E4M3[sc]!; // compressed-tensors' zero-scale placeholder
      expect(q.scales.data[b]).toBe(nearest(E4M3, s, 0x80));
      const eff = f32(s / g);
      xb.forEach((v, i) => {
        const c = nearest(E2M1, f32(v / eff), 8);
        const idx = b * 16 + i;
        expect((Number(q.codes.data[idx >> 1]!) >> ((idx & 1) * 4)) & 0xf).toBe(c);
        expect(deq.data[idx]).toBe(f32((c & 8 ? -1 : 1) * E2M1[c & 7]! * eff));
      });
    }
  });

  it('gives compressed-tensors shapes and dtypes', () => {
    const x = new Tensor('F32', [2, 3, 256], outlierData(1536, 1));
    const q = quantizeSync(x, 'INT4');
    expect([q.codes.dtype, q.codes.shape, q.scales.shape, q.global]).toEqual(['I32', [6, 32], [6, 2], undefined]);
    const t = quantizeSync(x, 'NVFP4_TJ2');
    expect(t.global!.shape).toEqual([6, 2]);
    const i8 = quantizeSync(x, 'INT8', { granularity: 'block', block: [4, 100] });
    expect(i8.scales.shape).toEqual([2, 3]);
    expect(dequantizeSync(i8, x.shape).shape).toEqual([2, 3, 256]);
  });

  it('refuses bad options and shapes', () => {
    const x = new Tensor('F32', [2, 24], new Float32Array(48));
    expect(() => quantizeSync(x, 'NVFP4')).toThrow(/divisible by 16 .*got \[2, 24\]/);
    expect(() => quantizeSync(x, 'INT9' as never)).toThrow(/invalid format/);
    expect(() => quantizeSync(x, 'INT8', { granularity: 'rows' as never })).toThrow(/options\.granularity/);
    expect(() => quantizeSync(x, 'INT8', { groupSize: -1 })).toThrow(/options\.groupSize/);
    expect(() => quantizeSync(x, 'INT8', { bogus: 1 } as never)).toThrow(/options/);
    expect(() => quantizeSync(new Tensor('I8', [1], new Int8Array(1)), 'INT8')).toThrow(/expected an F32 Tensor for x/);
    const nan = new Tensor('F32', [1, 16], new Float32Array(16).fill(NaN));
    try {
      quantizeSync(nan, 'NVFP4');
      expect.unreachable();
    } catch (e) {
      expect((e as SlipstreamError).code).toBe('SLIP_E_NON_FINITE');
    }
  });

  it('hadamard twice is the identity and leaves its input alone', () => {
    const x = new Tensor('F32', [3, 64], outlierData(192, 9));
    const y = hadamard(x, 32);
    expect(y.data).not.toEqual(x.data);
    hadamard(y, 32).data.forEach((v, i) => expect(Math.abs(v - x.data[i]!)).toBeLessThanOrEqual(1e-5 * 64));
  });
});
