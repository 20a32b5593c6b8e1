import { SlipstreamError } from '../errors/index.js';

/** Element types, spelled as in safetensors headers. */
export type DType = 'F32' | 'F16' | 'BF16' | 'F64' | 'F8_E4M3' | 'F8_E5M2' | 'I8' | 'U8' | 'I32' | 'I64';

/**
 * The TypedArray that views each dtype. Half and 8-bit floats have no JS array type, so they
 * are viewed as their raw bit patterns; use `Tensor.toFloat32()` for values.
 */
export interface DTypeArrayMap {
  F32: Float32Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  F64: Float64Array;
  F8_E4M3: Uint8Array;
  F8_E5M2: Uint8Array;
  I8: Int8Array;
  U8: Uint8Array;
  I32: Int32Array;
  I64: BigInt64Array;
}

export type TypedArrayOf<D extends DType> = DTypeArrayMap[D];
export type AnyTypedArray = DTypeArrayMap[DType];

export interface TypedArrayConstructorOf<A> {
  new (length: number): A;
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): A;
  readonly BYTES_PER_ELEMENT: number;
}

export interface DTypeInfo<D extends DType = DType> {
  readonly name: D;
  /** Bytes per element. */
  readonly size: number;
  readonly array: TypedArrayConstructorOf<TypedArrayOf<D>>;
  /** Value of `slip_dtype` in native/include/slipstream.h. */
  readonly nativeId: number;
  /** True when `data` holds bit patterns rather than values (F16, BF16, F8). */
  readonly rawBits: boolean;
  readonly kind: 'float' | 'int';
}

function info<D extends DType>(
  name: D,
  size: number,
  array: TypedArrayConstructorOf<TypedArrayOf<D>>,
  nativeId: number,
  rawBits: boolean,
  kind: 'float' | 'int',
): DTypeInfo<D> {
  return Object.freeze({ name, size, array, nativeId, rawBits, kind });
}

// nativeId must stay in step with enum slip_dtype; the binding passes it through unchanged.
export const DTYPE_INFO: { readonly [D in DType]: DTypeInfo<D> } = Object.freeze({
  F32: info('F32', 4, Float32Array, 0, false, 'float'),
  F16: info('F16', 2, Uint16Array, 1, true, 'float'),
  BF16: info('BF16', 2, Uint16Array, 2, true, 'float'),
  F64: info('F64', 8, Float64Array, 3, false, 'float'),
  F8_E4M3: info('F8_E4M3', 1, Uint8Array, 4, true, 'float'),
  F8_E5M2: info('F8_E5M2', 1, Uint8Array, 5, true, 'float'),
  I8: info('I8', 1, Int8Array, 6, false, 'int'),
  U8: info('U8', 1, Uint8Array, 7, false, 'int'),
  I32: info('I32', 4, Int32Array, 8, false, 'int'),
  I64: info('I64', 8, BigInt64Array, 9, false, 'int'),
});

/** All dtypes in native enum order. */
export const DTYPES: readonly DType[] = Object.freeze(
  (Object.keys(DTYPE_INFO) as DType[]).sort((a, b) => DTYPE_INFO[a].nativeId - DTYPE_INFO[b].nativeId),
);

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_INFO, value);
}

/** Looks up a dtype, throwing a message that lists the known ones. */
export function dtypeInfo<D extends DType>(dtype: D): DTypeInfo<D>;
export function dtypeInfo(dtype: unknown, where?: string): DTypeInfo;
export function dtypeInfo(dtype: unknown, where = 'dtype'): DTypeInfo {
  if (!isDType(dtype)) {
    throw new SlipstreamError(
      'SLIP_E_INVALID_ARGUMENT',
      `expected one of ${DTYPES.join(', ')} for ${where}, got ${JSON.stringify(dtype) ?? String(dtype)}`,
    );
  }
  return DTYPE_INFO[dtype];
}

export function dtypeFromNative(id: number): DType {
  const found = DTYPES.find((d) => DTYPE_INFO[d].nativeId === id);
  if (found === undefined) {
    throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected a native dtype id in 0..${DTYPES.length - 1}, got ${id}`);
  }
  return found;
}
