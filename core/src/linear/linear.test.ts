/**
 * LinearPlan and gemmF32 against a float64 product of the decoded operands, computed here from
 * the codes (weights written directly as codes; activations quantized by the spec's formulas).
 *
 * Bound (as native/test/test-gemm.cpp): an FP32 dot product of K terms is within
 * gamma_K * sum |a_i b_i| of the exact sum, gamma_K = K u / (1 - K u), u = 2^-24 (Higham 3.1).
 * Decoding each operand, the scale multiplies and the bias add round a few more times, so we
 * check |y - ref| <= gamma_{K+6} * (sum |a_i w_i| + |bias|).
 */
import { describe, expect, it } from 'vitest';

import { SlipstreamError } from '../errors/index.js';
import { dequantizeSync, quantizeSync } from '../quant/index.js';
import { Tensor, decodeFloatBits } from '../tensor/index.js';
import { LinearPlan, gemmF32, measurePeak, type QuantizedWeight } from './index.js';
import { thrown } from '../../../test/errors.js';

// ---- deterministic data (mulberry32)
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = rng(7);
const uni = () => Math.fround(rand() * 2 - 1);
const int = (n: number) => Math.floor(rand() * n);
const randomF32 = (shape: number[]) => {
  const t = Tensor.zeros('F32', shape);
  for (let i = 0; i < t.numel; i++) t.data[i] = uni();
  return t;
};

// ---- scalar formats in float64 (slipstream.h's element codecs)
const E2M1 = [0, 0.5, 1, 1.5, 2, 3, 4, 6];
const e2m1 = (code: number) => (code & 8 ? -1 : 1) * E2M1[code & 7];
const e4m3 = (code: number) => decodeFloatBits('F8_E4M3', code);
interface Grid { emin: number; mbits: number; max: number }
const G_E4M3: Grid = { emin: -6, mbits: 3, max: 448 };
const G_E2M1: Grid = { emin: 0, mbits: 1, max: 6 };
/** Round |a| (a float32 value) to the format's grid, nearest-even, saturating. */
function roundMagnitude(a: number, g: Grid): number {
  if (a === 0) return 0;
  const e = Math.max(Math.floor(Math.log2(a)) + (2 ** Math.floor(Math.log2(a)) > a ? -1 : 0), g.emin);
  const q = 2 ** (e - g.mbits);
  return Math.min(rint(a / q) * q, g.max);
}
/** Nearest integer, ties to even (C's rint / nearbyint). */
function rint(t: number): number {
  const r = Math.round(t);
  return r - t === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
const f = Math.fround;

// ---- weights written as codes, with their float64 decode
interface Made { w: QuantizedWeight | Tensor; dec: Float64Array; dyn: boolean; name: string }
/** The activations option a kind is planned with: W4A8 is NVFP4 weights against INT8 activations. */
const actsOf = (kind: string, made: Made) => (kind === 'NVFP4 W4A8' ? 'int8' : made.dyn ? 'dynamic' : undefined);

function makeWeight(kind: string, n: number, k: number): Made {
  const dec = new Float64Array(n * k);
  if (kind === 'F32') {
    const w = randomF32([n, k]);
    dec.set(w.data);
    return { w, dec, dyn: false, name: kind };
  }
  if (kind === 'W8A8' || kind === 'W8A16' || kind === 'FP8') {
    const fp8 = kind === 'FP8';
    const codes = Tensor.zeros(fp8 ? 'F8_E4M3' : 'I8', [n, k]);
    const scales = Tensor.zeros('F32', [n, 1]);
    for (let r = 0; r < n; r++) {
      scales.data[r] = f(0.01 * (1 + (r % 5)));
      for (let c = 0; c < k; c++) {
        let v: number;
        if (fp8) {
          let b = int(256);
          if ((b & 0x7f) === 0x7f) b = 0x10; // no NaN codes
          codes.data[r * k + c] = b;
          v = e4m3(b);
        } else {
          v = int(255) - 127;
          codes.data[r * k + c] = v;
        }
        dec[r * k + c] = v * scales.data[r];
      }
    }
    return { w: { format: fp8 ? 'FP8_E4M3' : 'INT8', codes, scales }, dec, dyn: kind !== 'W8A16', name: kind };
  }
  // 4-bit: even column in the low nibble
  const g = kind === 'W4A16' ? 128 : kind === 'MXFP4' ? 32 : 16;
  const groups = k / g;
  const bytes = new Uint8Array(n * k / 2);
  const nib = new Uint8Array(n * k);
  for (let i = 0; i < n * k; i++) nib[i] = int(16);
  for (let i = 0; i < n * k; i += 2) bytes[i / 2] = nib[i] | (nib[i + 1] << 4);
  if (kind === 'W4A16') {
    const scales = Tensor.zeros('F32', [n, groups]);
    for (let i = 0; i < n * groups; i++) scales.data[i] = f(0.001 * (1 + (i % 7)));
    for (let i = 0; i < n * k; i++) dec[i] = (nib[i] - 8) * scales.data[Math.floor(i / k) * groups + Math.floor((i % k) / g)];
    const codes = new Tensor('I32', [n, k / 8], new Int32Array(bytes.buffer));
    return { w: { format: 'INT4', codes, scales }, dec, dyn: false, name: kind };
  }
  const mx = kind === 'MXFP4';
  const scales = Tensor.zeros(mx ? 'U8' : 'F8_E4M3', [n, groups]);
  for (let i = 0; i < n * groups; i++) scales.data[i] = mx ? 120 + int(8) : 0x20 + int(40);
  const global = Tensor.fromArray('F32', [1], [37]);
  for (let i = 0; i < n * k; i++) {
    const s = scales.data[Math.floor(i / k) * groups + Math.floor((i % k) / g)];
    dec[i] = mx ? e2m1(nib[i]) * 2 ** (s - 127) : (e2m1(nib[i]) * e4m3(s)) / 37;
  }
  const codes = new Tensor('U8', [n, k / 2], bytes);
  const w: QuantizedWeight = mx ? { format: 'MXFP4', codes, scales } : { format: 'NVFP4', codes, scales, global };
  return { w, dec, dyn: kind === 'NVFP4 W4A4' || kind === 'NVFP4 W4A8', name: kind };
}

/** The activations each scheme multiplies, in float64 (float32 steps where native rounds in float32). */
function decodedActs(x: Float32Array, m: number, k: number, kind: string, dyn: boolean): Float64Array {
  const a = Float64Array.from(x);
  if (!dyn) return a;
  let gamax = 0;
  for (const v of x) gamax = Math.max(gamax, Math.abs(v));
  for (let r = 0; r < m; r++) {
    const row = x.subarray(r * k, (r + 1) * k);
    let amax = 0;
    for (const v of row) amax = Math.max(amax, Math.abs(v));
    if (kind === 'W8A8' || kind === 'NVFP4 W4A8') {
      const s = f(amax / 127);
      for (let i = 0; i < k; i++) {
        const q = s === 0 ? 0 : Math.min(127, Math.max(-127, rint(f(row[i] / s))));
        a[r * k + i] = q * s;
      }
    } else if (kind === 'FP8') {
      const s = f(amax / 448);
      for (let i = 0; i < k; i++) a[r * k + i] = s === 0 ? 0 : Math.sign(row[i]) * roundMagnitude(Math.abs(f(row[i] / s)), G_E4M3) * s;
    } else {
      const g = f(2688 / gamax);
      for (let b = 0; b < k; b += 16) {
        let bm = 0;
        for (let i = 0; i < 16; i++) bm = Math.max(bm, Math.abs(row[b + i]));
        const s = roundMagnitude(f(f(bm / 6) * g), G_E4M3);
        for (let i = 0; i < 16; i++) {
          const e = s === 0 ? 0 : roundMagnitude(Math.abs(f(f(row[b + i] * g) / s)), G_E2M1);
          a[r * k + b + i] = (Math.sign(row[b + i]) * e * s) / g;
        }
      }
    }
  }
  return a;
}

function expectClose(y: Tensor, a: Float64Array, w: Float64Array, bias: Float32Array | undefined, m: number, k: number, n: number) {
  const u = 2 ** -24;
  const gamma = ((k + 6) * u) / (1 - (k + 6) * u);
  let worst = 0;
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let ref = bias ? bias[j] : 0;
      let mag = Math.abs(ref);
      for (let c = 0; c < k; c++) {
        const p = a[i * k + c] * w[j * k + c];
        ref += p;
        mag += Math.abs(p);
      }
      const err = Math.abs((y.data as Float32Array)[i * n + j] - ref);
      const bound = gamma * mag + 1e-30;
      if (!(err <= bound)) throw new Error(`y[${i},${j}] = ${(y.data as Float32Array)[i * n + j]}, ref ${ref}, bound ${bound}`);
      worst = Math.max(worst, err / bound);
    }
  return worst;
}

const KINDS = ['F32', 'W8A8', 'W8A16', 'FP8', 'W4A16', 'NVFP4 W4A4', 'NVFP4 W4A8', 'NVFP4A16', 'MXFP4'];
const CASES: [number, number, number][] = [[1, 128, 33], [7, 256, 129], [33, 384, 7], [2, 640, 1]];

describe('LinearPlan', () => {
  for (const [m, k, n] of CASES)
    for (const kind of KINDS)
      it(`${kind} m,k,n = ${m},${k},${n}: run and runSync match the float64 reference`, async () => {
        const made = makeWeight(kind, n, k);
        const x = randomF32([m, k]);
        const bias = randomF32([n]);
        const acts = actsOf(kind, made);
        const plan = LinearPlan.create(made.w, acts ? { activations: acts } : {});
        expect([plan.n, plan.k]).toEqual([n, k]);
        const y = await plan.run(x, bias);
        const ySync = plan.runSync(x, bias);
        expect(y.shape).toEqual([m, n]);
        expect(ySync.data).toEqual(y.data);
        expectClose(y, decodedActs(x.data, m, k, kind, made.dyn), made.dec, bias.data, m, k, n);
        plan.free();
      });

  it('keeps leading dimensions of x: [2, 3, K] -> [2, 3, N]; bias is optional', async () => {
    const made = makeWeight('W4A16', 20, 256);
    const x = randomF32([2, 3, 256]);
    const plan = LinearPlan.create(made.w);
    const y = await plan.run(x);
    expect(y.shape).toEqual([2, 3, 20]);
    expectClose(y, Float64Array.from(x.data), made.dec, undefined, 6, 256, 20);
    plan.free();
  });

  it('takes quantize() output as is (NVFP4 and INT4 group 64), weight decoded by dequantize()', () => {
    const w = randomF32([48, 256]);
    for (const [format, options] of [['NVFP4', {}], ['INT4', { groupSize: 64 }]] as const) {
      const q = quantizeSync(w, format, options);
      const dec = Float64Array.from(dequantizeSync(q, w.shape).data);
      const x = randomF32([5, 256]);
      const plan = LinearPlan.create(q);
      expectClose(plan.runSync(x), Float64Array.from(x.data), dec, undefined, 5, 256, 48);
      plan.free();
    }
  });

  it('free() refuses while a run() is in flight, then succeeds', async () => {
    // ~1 GFLOP: still running microseconds later, when free() is called (the in-flight count
    // drops when the native work ends, not when the promise settles).
    const plan = LinearPlan.create(randomF32([1024, 1024]));
    const pending = plan.run(randomF32([512, 1024]));
    const e = thrown(() => plan.free());
    expect(e.code).toBe('SLIP_E_INVALID_ARGUMENT');
    expect(e.message).toMatch(/in flight/);
    expect((await pending).shape).toEqual([512, 1024]);
    plan.free();
    expect(plan.freed).toBe(true);
  });

  it('free() is idempotent and a freed plan refuses to run', async () => {
    const plan = LinearPlan.create(randomF32([4, 16]));
    expect(plan.freed).toBe(false);
    plan.free();
    plan.free();
    expect(plan.freed).toBe(true);
    expect(() => plan.runSync(randomF32([1, 16]))).toThrow(/already freed/);
    await expect(plan.run(randomF32([1, 16]))).rejects.toMatchObject({ code: 'SLIP_E_INVALID_ARGUMENT' });
  });
});

/** The SlipstreamError thrown by fn, for code/message checks. */
describe('LinearPlan errors name the argument', () => {
  const made = makeWeight('W4A16', 8, 256);
  const plan = LinearPlan.create(made.w);

  it('x of the wrong K, dtype or kind', async () => {
    let e = thrown(() => plan.runSync(randomF32([3, 100])));
    expect(e.code).toBe('SLIP_E_SHAPE_MISMATCH');
    expect(e.message).toBe('expected shape [..., 256] for x (K = 256), got [3, 100]');
    e = thrown(() => plan.runSync(Tensor.zeros('I8', [3, 256])));
    expect(e.code).toBe('SLIP_E_DTYPE_MISMATCH');
    expect(e.message).toMatch(/F32 tensor for x, got I8/);
    e = thrown(() => plan.runSync(new Float32Array(256) as unknown as Tensor));
    expect(e.code).toBe('SLIP_E_INVALID_ARGUMENT');
    expect(e.message).toMatch(/^expected a Tensor for x/);
    await expect(plan.run(randomF32([3, 100]))).rejects.toMatchObject({ code: 'SLIP_E_SHAPE_MISMATCH' });
  });

  it('bias of the wrong shape or dtype', () => {
    let e = thrown(() => plan.runSync(randomF32([3, 256]), randomF32([9])));
    expect(e.code).toBe('SLIP_E_SHAPE_MISMATCH');
    expect(e.message).toMatch(/shape \[8\] for bias/);
    e = thrown(() => plan.runSync(randomF32([3, 256]), Tensor.zeros('F16', [8])));
    expect(e.code).toBe('SLIP_E_DTYPE_MISMATCH');
    expect(e.message).toMatch(/for bias/);
  });

  it('weights: format, codes, scales and global (native checks map to coded errors)', () => {
    const nv = makeWeight('NVFP4A16', 8, 64).w as QuantizedWeight;
    let e = thrown(() => LinearPlan.create({ ...nv, format: 'NVFP5' as never }));
    expect(e.code).toBe('SLIP_E_INVALID_ARGUMENT');
    expect(e.message).toMatch(/^invalid w\.format/);
    e = thrown(() => LinearPlan.create({ ...nv, codes: Tensor.zeros('I8', [8, 32]) }));
    expect(e.code).toBe('SLIP_E_DTYPE_MISMATCH');
    expect(e.message).toMatch(/w\.codes/);
    e = thrown(() => LinearPlan.create({ ...nv, codes: Tensor.zeros('U8', [256]) }));
    expect(e.code).toBe('SLIP_E_SHAPE_MISMATCH');
    expect(e.message).toMatch(/\[N, K\/2\] tensor for w\.codes/);
    e = thrown(() => LinearPlan.create({ ...nv, scales: Tensor.zeros('F8_E4M3', [8, 3]) }));
    expect(e.code).toBe('SLIP_E_SHAPE_MISMATCH');
    expect(e.message).toMatch(/w\.scales/);
    e = thrown(() => LinearPlan.create({ ...nv, scales: undefined }));
    expect(e.code).toBe('SLIP_E_INVALID_ARGUMENT');
    expect(e.message).toMatch(/for w\.scales/);
    e = thrown(() => LinearPlan.create({ ...nv, global: Tensor.fromArray('F32', [1], [-1]) }));
    expect(e.code).toBe('SLIP_E_INVALID_ARGUMENT');
    expect(e.message).toMatch(/w\.global/);
    e = thrown(() => LinearPlan.create(Tensor.zeros('F16', [8, 64])));
    expect(e.code).toBe('SLIP_E_DTYPE_MISMATCH');
  });

  it('options: zod-validated, and format-specific refusals from native', () => {
    let e = thrown(() => LinearPlan.create(made.w, { activations: 'static' as never }));
    expect(e.message).toMatch(/^invalid options\.activations/);
    e = thrown(() => LinearPlan.create(made.w, { actGlobalScale: -1 }));
    expect(e.message).toMatch(/^invalid options\.actGlobalScale/);
    e = thrown(() => LinearPlan.create(made.w, { typo: 1 } as never));
    expect(e.code).toBe('SLIP_E_INVALID_ARGUMENT');
    e = thrown(() => LinearPlan.create(made.w, { activations: 'dynamic' }));
    expect(e.code).toBe('SLIP_E_UNSUPPORTED');
    expect(e.message).toMatch(/INT4 weight/);
    e = thrown(() => LinearPlan.create(made.w, { activations: 'int8' }));
    expect(e.code).toBe('SLIP_E_UNSUPPORTED');
    expect(e.message).toMatch(/INT8 or NVFP4 weight .*got format INT4/);
  });

  it('a native error carries the caller\'s stack', () => {
    const e = thrown(() => LinearPlan.create(made.w, { activations: 'dynamic' }));
    expect(e.stack).toMatch(/linear\.test\.ts/);
  });
});

describe('gemmF32', () => {
  it('matches the float64 reference, with and without bias, any leading dims', () => {
    for (const [m, k, n] of [[1, 100, 37], [19, 111, 45], [3, 1, 2]]) {
      const x = randomF32([m, k]);
      const w = randomF32([n, k]);
      const bias = randomF32([n]);
      expectClose(gemmF32(x, w, bias), Float64Array.from(x.data), Float64Array.from(w.data), bias.data, m, k, n);
      const y3 = gemmF32(x.reshape([1, m, k]), w);
      expect(y3.shape).toEqual([1, m, n]);
      expectClose(y3, Float64Array.from(x.data), Float64Array.from(w.data), undefined, m, k, n);
    }
  });

  it('errors name w, x and bias', () => {
    let e = thrown(() => gemmF32(randomF32([2, 8]), randomF32([8])));
    expect(e.message).toMatch(/\[N, K\] tensor for w/);
    e = thrown(() => gemmF32(randomF32([2, 7]), randomF32([4, 8])));
    expect(e.message).toMatch(/for x/);
    e = thrown(() => gemmF32(randomF32([2, 8]), Tensor.zeros('BF16', [4, 8])));
    expect(e.code).toBe('SLIP_E_DTYPE_MISMATCH');
    expect(e.message).toMatch(/for w, got BF16/);
    e = thrown(() => gemmF32(randomF32([2, 8]), randomF32([4, 8]), randomF32([2, 2])));
    expect(e.message).toMatch(/for bias/);
  });
});

describe('measurePeak', () => {
  it('measures FP32 FMA ops/s, or refuses as unsupported', async () => {
    const ops = await measurePeak('fp32-fma', 0.05).catch((e: SlipstreamError) => (expect(e.code).toBe('SLIP_E_UNSUPPORTED'), 1));
    expect(ops).toBeGreaterThan(0);
  });
  it('validates kind and seconds', async () => {
    await expect(measurePeak('fp64' as never, 1)).rejects.toThrow(/invalid kind/);
    await expect(measurePeak('int8-vnni', 0)).rejects.toThrow(/invalid seconds/);
  });
});
