import { SlipstreamError } from '../errors/index.js';

/** The dtypes whose elements are stored as raw bit patterns of a narrow float format. */
export type BitFloatDType = 'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2';

interface FloatFormat {
  readonly expBits: number;
  readonly mantBits: number;
  readonly bias: number;
  /**
   * 'ieee': the all-ones exponent encodes Inf (mantissa 0) and NaN.
   * 'fn': OCP E4M3FN, which gives up Inf so that the all-ones exponent holds normal numbers;
   * only exponent and mantissa all ones is NaN (max finite 448).
   */
  readonly special: 'ieee' | 'fn';
}

const FORMATS: { readonly [D in BitFloatDType]: FloatFormat } = {
  F16: { expBits: 5, mantBits: 10, bias: 15, special: 'ieee' },
  BF16: { expBits: 8, mantBits: 7, bias: 127, special: 'ieee' },
  F8_E4M3: { expBits: 4, mantBits: 3, bias: 7, special: 'fn' },
  F8_E5M2: { expBits: 5, mantBits: 2, bias: 15, special: 'ieee' },
};

export function isBitFloatDType(dtype: string): dtype is BitFloatDType {
  return Object.prototype.hasOwnProperty.call(FORMATS, dtype);
}

function formatOf(dtype: BitFloatDType): FloatFormat {
  const f = FORMATS[dtype];
  if (f === undefined) {
    throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected one of F16, BF16, F8_E4M3, F8_E5M2, got ${String(dtype)}`);
  }
  return f;
}

const scratch64 = new Float64Array(1);
const scratch64Bits = new Uint32Array(scratch64.buffer);
const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * 2^k for integer k in the normal float64 range, built from bits. Math.pow is not specified to
 * be exact, and encoding must be bit-exact.
 */
function pow2(k: number): number {
  scratch64Bits[LE ? 0 : 1] = 0;
  scratch64Bits[LE ? 1 : 0] = (k + 1023) << 20;
  return scratch64[0];
}

/** The exact value of a bit pattern (NaN for every NaN pattern). */
export function decodeFloatBits(dtype: BitFloatDType, bits: number): number {
  const f = formatOf(dtype);
  const mantMask = (1 << f.mantBits) - 1;
  const expMax = (1 << f.expBits) - 1;
  const negative = ((bits >>> (f.expBits + f.mantBits)) & 1) === 1;
  const exp = (bits >>> f.mantBits) & expMax;
  const mant = bits & mantMask;
  let value: number;
  if (f.special === 'ieee' && exp === expMax) value = mant === 0 ? Infinity : NaN;
  else if (f.special === 'fn' && exp === expMax && mant === mantMask) value = NaN;
  else if (exp === 0) value = mant * pow2(1 - f.bias - f.mantBits);
  else value = (mant + (1 << f.mantBits)) * pow2(exp - f.bias - f.mantBits);
  return negative ? -value : value;
}

function roundHalfEven(q: number): number {
  const lo = Math.floor(q);
  const frac = q - lo; // exact: q < 2^12 here
  if (frac > 0.5) return lo + 1;
  if (frac < 0.5) return lo;
  return lo % 2 === 0 ? lo : lo + 1;
}

/**
 * Rounds a float64 straight to the format, to nearest with ties to even. Going through float32
 * first would round twice and can be off by one ulp at ties. Overflow gives Inf, or NaN for
 * E4M3FN (which has no Inf), as the OCP FP8 spec's non-saturating mode and PyTorch do.
 */
export function encodeFloatBits(dtype: BitFloatDType, value: number): number {
  const f = formatOf(dtype);
  const signBit = 1 << (f.expBits + f.mantBits);
  const expMax = (1 << f.expBits) - 1;
  const mantMask = (1 << f.mantBits) - 1;
  const nan = f.special === 'fn' ? (expMax << f.mantBits) | mantMask : (expMax << f.mantBits) | (1 << (f.mantBits - 1));
  if (Number.isNaN(value)) return nan;
  const sign = value < 0 || Object.is(value, -0) ? signBit : 0;
  const a = Math.abs(value);
  if (a === 0) return sign;
  if (a === Infinity) return sign | (f.special === 'ieee' ? expMax << f.mantBits : nan);

  const emin = 1 - f.bias;
  let e = emin;
  if (a >= pow2(emin)) {
    e = Math.floor(Math.log2(a));
    // log2 may be off by one near powers of two; pin it down exactly.
    if (e > 1023) e = 1023;
    while (pow2(e) > a) e--;
    while (e < 1023 && pow2(e + 1) <= a) e++;
  }
  // Scaling by a power of two is exact, so the only rounding is the one below.
  let q = roundHalfEven(a * pow2(f.mantBits - e));
  if (q === 1 << (f.mantBits + 1)) {
    q >>>= 1;
    e += 1;
  }
  if (q < 1 << f.mantBits) return sign | q; // subnormal (or zero after underflow)
  const field = e + f.bias;
  const mant = q - (1 << f.mantBits);
  if (f.special === 'ieee' && field >= expMax) return sign | (expMax << f.mantBits);
  if (f.special === 'fn' && (field > expMax || (field === expMax && mant === mantMask))) return sign | nan;
  return sign | (field << f.mantBits) | mant;
}

// Float32 bit patterns per input pattern; built on first use (F16: 256 KiB).
const tables = new Map<BitFloatDType, Uint32Array>();
const scratch32 = new Float32Array(1);
const scratch32Bits = new Uint32Array(scratch32.buffer);

function float32BitsTable(dtype: 'F16' | 'F8_E4M3' | 'F8_E5M2'): Uint32Array {
  let table = tables.get(dtype);
  if (table !== undefined) return table;
  const f = FORMATS[dtype];
  const width = 1 + f.expBits + f.mantBits;
  table = new Uint32Array(1 << width);
  for (let bits = 0; bits < table.length; bits++) {
    const v = decodeFloatBits(dtype, bits);
    if (Number.isNaN(v)) {
      // Keep sign and payload and set the quiet bit, as x86 F16C widening does.
      const sign = (bits >>> (width - 1)) & 1;
      const payload = bits & ((1 << f.mantBits) - 1);
      table[bits] = (sign << 31) | 0x7f800000 | (payload << (23 - f.mantBits)) | 0x400000;
      table[bits] >>>= 0;
    } else {
      scratch32[0] = v; // exact: every value of these formats is a float32
      table[bits] = scratch32Bits[0];
    }
  }
  tables.set(dtype, table);
  return table;
}

/** Widens raw bits to float32 exactly, writing into `out` (same length). */
export function bitFloatsToFloat32(dtype: BitFloatDType, src: Uint16Array | Uint8Array, out: Float32Array): Float32Array {
  if (out.length !== src.length) {
    throw new SlipstreamError('SLIP_E_SHAPE_MISMATCH', `expected an output of ${src.length} elements, got ${out.length}`);
  }
  const outBits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  if (dtype === 'BF16') {
    // BF16 is the top half of a float32, so widening is a shift.
    for (let i = 0; i < src.length; i++) outBits[i] = (src[i] << 16) >>> 0;
    return out;
  }
  const table = float32BitsTable(dtype);
  for (let i = 0; i < src.length; i++) outBits[i] = table[src[i]];
  return out;
}
