export {
  DTYPES,
  DTYPE_INFO,
  dtypeFromNative,
  dtypeInfo,
  isDType,
  type AnyTypedArray,
  type DType,
  type DTypeArrayMap,
  type DTypeInfo,
  type TypedArrayOf,
} from './dtype.js';
export { bitFloatsToFloat32, decodeFloatBits, encodeFloatBits, isBitFloatDType, type BitFloatDType } from './float-bits.js';
export { MAX_NATIVE_DIMS, numelOf, sameShape, shapeToString, validateShape } from './shape.js';
export { Tensor, type NativeTensor } from './tensor.js';
