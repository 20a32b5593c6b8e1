export { gemmF32 } from './gemm.js';
export { LinearPlan, type QuantizedWeight } from './plan.js';
export { CODES_PER_ITEM, WEIGHT_FORMATS, linearOptionsSchema, type LinearOptions, type WeightFormat } from './options.js';
export { measurePeak, type PeakKind } from './peak.js';
