import { SlipstreamError } from '../errors/index.js';
import { DTYPE_INFO, dtypeInfo, type AnyTypedArray, type DType, type TypedArrayOf } from './dtype.js';
import { bitFloatsToFloat32, encodeFloatBits, isBitFloatDType } from './float-bits.js';
import { MAX_NATIVE_DIMS, numelOf, shapeToString, validateShape } from './shape.js';

/** The object the native binding reads (see ToTensor in native/node/common.cc). */
export interface NativeTensor {
  data: AnyTypedArray;
  dtype: number;
  shape: number[];
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const INT_RANGE: Partial<Record<DType, readonly [bigint, bigint]>> = {
  I8: [-128n, 127n],
  U8: [0n, 255n],
  I32: [-2147483648n, 2147483647n],
  I64: [-(2n ** 63n), 2n ** 63n - 1n],
};

function describe(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'string') return JSON.stringify(value);
  return String(value);
}

function arrayTag(value: unknown): string {
  return Object.prototype.toString.call(value).slice(8, -1);
}

/**
 * A dtype, a shape and a TypedArray view of the elements in row-major order. The view may
 * share memory with a larger buffer (a file chunk, a native allocation); `bytes()` and
 * `toNative()` hand that memory on without copying.
 */
export class Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: TypedArrayOf<D>;

  constructor(dtype: D, shape: readonly number[], data: TypedArrayOf<D>) {
    const info = dtypeInfo(dtype as unknown, 'dtype');
    this.shape = validateShape(shape);
    // toString tag rather than instanceof: it also holds for arrays from other realms and
    // for Buffer (a Uint8Array).
    if (!ArrayBuffer.isView(data) || arrayTag(data) !== info.array.name) {
      throw new SlipstreamError(
        'SLIP_E_DTYPE_MISMATCH',
        `expected a ${info.array.name} for ${dtype} data, got ${ArrayBuffer.isView(data) ? arrayTag(data) : describe(data)}`,
      );
    }
    const numel = numelOf(this.shape);
    if (data.length !== numel) {
      throw new SlipstreamError(
        'SLIP_E_SHAPE_MISMATCH',
        `expected ${numel} elements for ${dtype} ${shapeToString(this.shape)}, got ${data.length}`,
      );
    }
    this.dtype = dtype;
    this.data = data;
  }

  get numel(): number {
    return this.data.length;
  }

  get byteLength(): number {
    return this.data.byteLength;
  }

  get rank(): number {
    return this.shape.length;
  }

  static zeros<D extends DType>(dtype: D, shape: readonly number[]): Tensor<D> {
    const info = dtypeInfo(dtype as unknown, 'dtype');
    const dims = validateShape(shape);
    return new Tensor(dtype, dims, new info.array(numelOf(dims)) as TypedArrayOf<D>);
  }

  /**
   * Builds a tensor from values. Floats are rounded to the dtype (to nearest, ties to even;
   * F16/BF16/F8 directly from float64). Integers must be in range: out-of-range values throw
   * rather than wrap, since wrapping hides bugs in quantization code.
   */
  static fromArray<D extends DType>(dtype: D, shape: readonly number[], values: ArrayLike<number | bigint>): Tensor<D> {
    const t = Tensor.zeros(dtype, shape);
    if (values.length !== t.numel) {
      throw new SlipstreamError(
        'SLIP_E_SHAPE_MISMATCH',
        `expected ${t.numel} values for ${dtype} ${shapeToString(t.shape)}, got ${values.length}`,
      );
    }
    const info = DTYPE_INFO[dtype];
    const out = t.data as AnyTypedArray;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (info.kind === 'float') {
        if (typeof v !== 'number') {
          throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected a number for values[${i}], got ${describe(v)}`);
        }
        out[i] = isBitFloatDType(dtype) ? encodeFloatBits(dtype, v) : v;
        continue;
      }
      const [lo, hi] = INT_RANGE[dtype]!;
      const ok = typeof v === 'bigint' ? v >= lo && v <= hi : Number.isInteger(v) && v >= Number(lo) && v <= Number(hi);
      if (!ok || (typeof v === 'number' && dtype === 'I64' && !Number.isSafeInteger(v))) {
        throw new SlipstreamError(
          'SLIP_E_INVALID_ARGUMENT',
          `expected an integer in [${lo}, ${hi}] for values[${i}], got ${describe(v)}`,
        );
      }
      if (dtype === 'I64') (out as BigInt64Array)[i] = BigInt(v);
      else (out as Exclude<AnyTypedArray, BigInt64Array>)[i] = Number(v);
    }
    return t;
  }

  /**
   * Views little-endian bytes as a tensor. Shares memory when `bytes.byteOffset` is a multiple
   * of the element size (a TypedArray cannot start unaligned); copies otherwise.
   */
  static fromBytes<D extends DType>(dtype: D, shape: readonly number[], bytes: Uint8Array): Tensor<D> {
    const info = dtypeInfo(dtype as unknown, 'dtype');
    const dims = validateShape(shape);
    const numel = numelOf(dims);
    if (!(bytes instanceof Uint8Array)) {
      throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected a Uint8Array of bytes, got ${describe(bytes)}`);
    }
    if (bytes.byteLength !== numel * info.size) {
      throw new SlipstreamError(
        'SLIP_E_SHAPE_MISMATCH',
        `expected ${numel * info.size} bytes for ${dtype} ${shapeToString(dims)}, got ${bytes.byteLength}`,
      );
    }
    if (!LITTLE_ENDIAN && info.size > 1) {
      throw new SlipstreamError('SLIP_E_UNSUPPORTED', 'multi-byte tensors need a little-endian host');
    }
    let source = bytes;
    if (bytes.byteOffset % info.size !== 0) source = bytes.slice();
    const data = new info.array(source.buffer, source.byteOffset, numel) as TypedArrayOf<D>;
    return new Tensor(dtype, dims, data);
  }

  /** The elements' bytes, sharing memory with `data`. */
  bytes(): Uint8Array {
    return new Uint8Array(this.data.buffer, this.data.byteOffset, this.data.byteLength);
  }

  /** A tensor with another shape of the same element count, sharing memory. */
  reshape(shape: readonly number[]): Tensor<D> {
    const dims = validateShape(shape);
    if (numelOf(dims) !== this.numel) {
      throw new SlipstreamError(
        'SLIP_E_SHAPE_MISMATCH',
        `cannot reshape ${this.dtype} ${shapeToString(this.shape)} (${this.numel} elements) to ${shapeToString(dims)}`,
      );
    }
    return new Tensor(this.dtype, dims, this.data);
  }

  /** The argument object of native calls; no copy. */
  toNative(): NativeTensor {
    if (this.shape.length > MAX_NATIVE_DIMS) {
      throw new SlipstreamError(
        'SLIP_E_UNSUPPORTED',
        `expected at most ${MAX_NATIVE_DIMS} dimensions for a native call, got ${this.shape.length} (${shapeToString(this.shape)})`,
      );
    }
    return { data: this.data, dtype: DTYPE_INFO[this.dtype].nativeId, shape: [...this.shape] };
  }

  /**
   * A new Float32Array of the values. Exact for F32, F16, BF16, F8, I8 and U8; F64, and I32/I64
   * beyond 2^24, are rounded.
   */
  toFloat32(): Float32Array {
    const out = new Float32Array(this.numel);
    const dtype: DType = this.dtype;
    if (isBitFloatDType(dtype)) return bitFloatsToFloat32(dtype, this.data as Uint16Array | Uint8Array, out);
    if (dtype === 'I64') {
      const src = this.data as BigInt64Array;
      for (let i = 0; i < src.length; i++) out[i] = Number(src[i]);
      return out;
    }
    out.set(this.data as Exclude<AnyTypedArray, BigInt64Array>);
    return out;
  }
}
