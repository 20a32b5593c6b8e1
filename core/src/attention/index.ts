/** Attention: every method's public functions (each method adds its exports below). */
export { ATTN_LAYOUTS, attnOptionsSchema, type AttnLayout, type AttnOptions, type AttnResult } from './common.js';
export { attnDense, attnDenseSync } from './dense.js';
export { attnBlockSparse, attnBlockSparseSync, type BlockSparseResult } from './block-sparse.js';
export { attnSparse, attnSparsePredict, attnSparseSync, sparseOptionsSchema, type SparseOptions, type SparseResult } from './sparse.js';
export {
  slaAttnOptionsSchema, slaBackward, slaBackwardSync, slaForward, slaForwardSync, slaOptionsSchema, slaRoute,
  type SlaAttnOptions, type SlaGrads, type SlaOptions, type SlaWeights,
} from './sla.js';
export {
  attnSage, attnSageBackward, attnSageBackwardSync, attnSageSync, sageOptionsSchema,
  type SageGrads, type SageOptions,
} from './sage.js';
