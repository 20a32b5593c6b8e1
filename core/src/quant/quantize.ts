/**
 * Tensor quantization: quantize a float32 tensor [..., K] into codes, scales and (NVFP4
 * formats) a global tensor laid out exactly as compressed-tensors stores them; dequantize back.
 * Shapes and dtypes come from the native slip_quant_shapes, so TS never re-derives them.
 */
import { invalidArgument } from '../errors/index.js';
import type { NativeQuantParams } from '../native/binding.js';
import { native } from '../native/index.js';
import { Tensor, type DType } from '../tensor/index.js';
import { callNative, callNativeAsync } from '../native/call.js';
import { parseFormat, toNativeParams, type QuantFormat, type QuantOptions } from './options.js';

export interface Quantized {
  format: QuantFormat;
  codes: Tensor;
  scales: Tensor;
  /** NVFP4: F32 [1] (448*6/amax, a divisor); NVFP4_TJ2: F32 [rows, K/128] outer scales. */
  global?: Tensor;
  /** The options it was made with, for dequantize. */
  options: QuantOptions;
}

const CODES_DTYPE: Record<QuantFormat, DType> = {
  INT8: 'I8', INT4: 'I32', FP8_E4M3: 'F8_E4M3', FP8_E5M2: 'F8_E5M2', NVFP4: 'U8', NVFP4_TJ2: 'U8', MXFP4: 'U8',
};
const SCALES_DTYPE: Record<QuantFormat, DType> = {
  INT8: 'F32', INT4: 'F32', FP8_E4M3: 'F32', FP8_E5M2: 'F32', NVFP4: 'F8_E4M3', NVFP4_TJ2: 'F8_E4M3', MXFP4: 'U8',
};

function requireF32(x: unknown, name: string): Tensor<'F32'> {
  if (!(x instanceof Tensor) || x.dtype !== 'F32') {
    throw invalidArgument(name, 'an F32 Tensor', x instanceof Tensor ? `a ${x.dtype} Tensor` : x);
  }
  return x as Tensor<'F32'>;
}

function prepare(x: unknown, format: unknown, options: unknown) {
  const f = parseFormat(format);
  const t = requireF32(x, 'x');
  const params: NativeQuantParams = toNativeParams(f, options);
  const shapes = callNative(() => native().quantShapes(params, [...t.shape]));
  const out: Quantized = {
    format: f,
    codes: Tensor.zeros(CODES_DTYPE[f], shapes.codes),
    scales: Tensor.zeros(SCALES_DTYPE[f], shapes.scales),
    options: (options ?? {}) as QuantOptions,
  };
  if (shapes.global) out.global = Tensor.zeros('F32', shapes.global);
  return { t, params, out };
}

/** Runs on the libuv pool; use quantizeSync for small tensors. */
export async function quantize(x: Tensor, format: QuantFormat, options: QuantOptions = {}): Promise<Quantized> {
  const { t, params, out } = prepare(x, format, options);
  await callNativeAsync(() =>
    native().quantize(t.toNative(), params, out.codes.toNative(), out.scales.toNative(), out.global?.toNative() ?? null),
  );
  return out;
}

export function quantizeSync(x: Tensor, format: QuantFormat, options: QuantOptions = {}): Quantized {
  const { t, params, out } = prepare(x, format, options);
  callNative(() =>
    native().quantizeSync(t.toNative(), params, out.codes.toNative(), out.scales.toNative(), out.global?.toNative() ?? null),
  );
  return out;
}

function prepareOut(q: Quantized, shape: readonly number[]) {
  const params = toNativeParams(parseFormat(q.format), q.options);
  return { params, out: Tensor.zeros('F32', shape) };
}

/** Float32 tensor of `shape` (the shape that was quantized, [..., K]). */
export async function dequantize(q: Quantized, shape: readonly number[]): Promise<Tensor<'F32'>> {
  const { params, out } = prepareOut(q, shape);
  await callNativeAsync(() =>
    native().dequantize(q.codes.toNative(), q.scales.toNative(), q.global?.toNative() ?? null, params, out.toNative()),
  );
  return out;
}

export function dequantizeSync(q: Quantized, shape: readonly number[]): Tensor<'F32'> {
  const { params, out } = prepareOut(q, shape);
  callNative(() =>
    native().dequantizeSync(q.codes.toNative(), q.scales.toNative(), q.global?.toNative() ?? null, params, out.toNative()),
  );
  return out;
}

/**
 * Orthonormal blocked Walsh-Hadamard transform along the last dimension (block 16..256, a
 * power of two dividing K). Returns a new tensor; the input is not modified.
 */
export function hadamard(x: Tensor, block: number): Tensor<'F32'> {
  const t = requireF32(x, 'x');
  const y = new Tensor('F32', t.shape, Float32Array.from(t.data));
  callNative(() => native().hadamard(y.toNative(), block));
  return y;
}
