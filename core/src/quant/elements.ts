/**
 * Element codecs and packing: small-float codes one per byte, nibble pairs, and
 * compressed-tensors' int32 words. Thin typed wrappers over native/src/quant.
 */
import { invalidArgument } from '../errors/index.js';
import { native } from '../native/index.js';
import { callNative } from '../native/call.js';
import { ELEMENT_FORMATS, parseElementFormat, roundingId, type ElementFormat } from './options.js';

export interface EncodeOptions {
  rounding?: 'nearest' | 'stochastic';
  seed?: number | bigint;
}

function requireArray<T>(value: unknown, ctor: { new (n: number): T; name: string }, name: string): T {
  if (!(value instanceof (ctor as unknown as new (...a: never[]) => object))) throw invalidArgument(name, `a ${ctor.name}`, value);
  return value as T;
}

/** One code per value: round to nearest even (or stochastic), saturating. */
export function encodeElements(format: ElementFormat, values: Float32Array, options: EncodeOptions = {}): Uint8Array {
  const f = ELEMENT_FORMATS[parseElementFormat(format)];
  requireArray(values, Float32Array, 'values');
  const rounding = roundingId(options.rounding);
  return callNative(() => native().elementEncode(f, values, rounding, options.seed ?? 0));
}

export function decodeElements(format: ElementFormat, codes: Uint8Array): Float32Array {
  const f = ELEMENT_FORMATS[parseElementFormat(format)];
  requireArray(codes, Uint8Array, 'codes');
  return callNative(() => native().elementDecode(f, codes));
}

/** Element 2i in the low nibble, 2i+1 in the high nibble; codes.length must be even. */
export function packNibbles(codes: Uint8Array): Uint8Array {
  requireArray(codes, Uint8Array, 'codes');
  return callNative(() => native().packNibbles(codes));
}

export function unpackNibbles(packed: Uint8Array): Uint8Array {
  requireArray(packed, Uint8Array, 'packed');
  return callNative(() => native().unpackNibbles(packed));
}

/** compressed-tensors' pack-quantized words: [rows, ceil(cols*bits/32)] int32. */
export function packIntCT(values: Int8Array, rows: number, cols: number, bits: 4 | 8): Int32Array {
  requireArray(values, Int8Array, 'values');
  return callNative(() => native().packIntCT(values, rows, cols, bits));
}

export function unpackIntCT(packed: Int32Array, rows: number, cols: number, bits: 4 | 8): Int8Array {
  requireArray(packed, Int32Array, 'packed');
  return callNative(() => native().unpackIntCT(packed, rows, cols, bits));
}
