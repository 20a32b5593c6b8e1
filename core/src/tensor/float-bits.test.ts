import { describe, expect, it } from 'vitest';
import { bitFloatsToFloat32, decodeFloatBits, encodeFloatBits, type BitFloatDType } from './float-bits.js';

// Independent reference: the textbook formula, written without the shared helpers.
function reference(bits: number, e: number, m: number, bias: number, fn: boolean): number {
  const sign = (bits >> (e + m)) & 1 ? -1 : 1;
  const exp = (bits >> m) & ((1 << e) - 1);
  const mant = bits & ((1 << m) - 1);
  const top = (1 << e) - 1;
  if (!fn && exp === top) return mant === 0 ? sign * Infinity : NaN;
  if (fn && exp === top && mant === (1 << m) - 1) return NaN;
  if (exp === 0) return sign * (mant / 2 ** m) * 2 ** (1 - bias);
  return sign * (1 + mant / 2 ** m) * 2 ** (exp - bias);
}

const FORMATS: [BitFloatDType, number, number, number, boolean][] = [
  ['F16', 5, 10, 15, false],
  ['BF16', 8, 7, 127, false],
  ['F8_E4M3', 4, 3, 7, true],
  ['F8_E5M2', 5, 2, 15, false],
];

describe.each(FORMATS)('%s', (dtype, e, m, bias, fn) => {
  const count = 1 << (1 + e + m);

  it('decodes every pattern like the textbook formula', () => {
    // One assertion over the mismatch list: 65,536 expect() calls would take seconds.
    const bad: number[] = [];
    for (let bits = 0; bits < count; bits++) {
      const want = reference(bits, e, m, bias, fn);
      const got = decodeFloatBits(dtype, bits);
      if (!(Object.is(got, want) || (Number.isNaN(want) && Number.isNaN(got)))) bad.push(bits);
    }
    expect(bad).toEqual([]);
  });

  it('encodes every decoded value back to the same pattern', () => {
    const bad: number[] = [];
    for (let bits = 0; bits < count; bits++) {
      const v = decodeFloatBits(dtype, bits);
      const back = encodeFloatBits(dtype, v);
      if (Number.isNaN(v) ? !Number.isNaN(decodeFloatBits(dtype, back)) : back !== bits) bad.push(bits);
    }
    expect(bad).toEqual([]);
  });

  it('widens to float32 exactly in bulk', () => {
    const src = m + e + 1 === 8 ? new Uint8Array(count) : new Uint16Array(count);
    for (let i = 0; i < count; i++) src[i] = i;
    const out = bitFloatsToFloat32(dtype, src, new Float32Array(count));
    const bad: number[] = [];
    for (let bits = 0; bits < count; bits++) {
      const v = decodeFloatBits(dtype, bits);
      if (Number.isNaN(v) ? !Number.isNaN(out[bits]) : !Object.is(out[bits], v)) bad.push(bits);
    }
    expect(bad).toEqual([]);
  });

  it('rounds midpoints to the even neighbour', () => {
    // Between 1 and the next value up, 1 + 2^-m: the midpoint goes to 1 (even mantissa),
    // the midpoint above goes up to 1 + 2^-(m-1).
    const ulp = 2 ** -m;
    const one = encodeFloatBits(dtype, 1);
    expect(encodeFloatBits(dtype, 1 + ulp / 2)).toBe(one);
    expect(encodeFloatBits(dtype, 1 + ulp * 1.5)).toBe(one + 2);
    expect(encodeFloatBits(dtype, 1 + ulp / 2 + 2 ** -40)).toBe(one + 1);
  });
});

describe('special values', () => {
  it('gives FP8 E4M3 its documented range: max 448, NaN on overflow, no Inf', () => {
    expect(decodeFloatBits('F8_E4M3', 0x7e)).toBe(448);
    expect(decodeFloatBits('F8_E4M3', 0x01)).toBe(2 ** -9);
    expect(encodeFloatBits('F8_E4M3', 464)).toBe(0x7e); // tie rounds to even 448
    expect(encodeFloatBits('F8_E4M3', 465)).toBe(0x7f);
    expect(encodeFloatBits('F8_E4M3', -Infinity)).toBe(0xff);
  });

  it('gives FP8 E5M2 Inf on overflow and max 57344', () => {
    expect(decodeFloatBits('F8_E5M2', 0x7b)).toBe(57344);
    expect(encodeFloatBits('F8_E5M2', 1e6)).toBe(0x7c);
    expect(decodeFloatBits('F8_E5M2', 0x01)).toBe(2 ** -16);
  });

  it('keeps signed zeros and flushes tiny values to zero', () => {
    expect(encodeFloatBits('F16', -0)).toBe(0x8000);
    expect(encodeFloatBits('F16', 2 ** -26)).toBe(0);
    expect(encodeFloatBits('F16', 2 ** -25 * 1.0001)).toBe(1);
    expect(encodeFloatBits('BF16', -1e-300)).toBe(0x8000);
  });

  it('does not round twice through float32', () => {
    // 1 + 2^-11 + 2^-40 rounds up in F16; via float32 it would become 1 + 2^-11 (a tie) and
    // round down to 1.
    expect(encodeFloatBits('F16', 1 + 2 ** -11 + 2 ** -40)).toBe(0x3c01);
    expect(Math.fround(1 + 2 ** -11 + 2 ** -40)).toBe(1 + 2 ** -11);
  });

  it('widens BF16 NaN payloads bit for bit', () => {
    const out = bitFloatsToFloat32('BF16', new Uint16Array([0x7fc1]), new Float32Array(1));
    expect(new Uint32Array(out.buffer)[0]).toBe(0x7fc10000);
  });
});
