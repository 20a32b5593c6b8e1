/**
 * The public surface of Slipstream's TypeScript core: what `import ... from 'slipstream'` gives.
 * Internals (the raw native binding, loaders) stay behind their folders.
 */
export { ERROR_CODES, SlipstreamError, type ErrorCode } from './errors/index.js';
export { ISA_LEVELS, capabilities, setIsa, setNumThreads, type Capabilities, type IsaLevel } from './native/index.js';
export { DTYPES, Tensor, dtypeInfo, isDType, type DType, type DTypeInfo } from './tensor/index.js';
export {
  SafetensorsReader,
  SafetensorsWriter,
  readSafetensors,
  writeSafetensors,
  type SafetensorsContents,
  type TensorInfo,
  type TensorSpec,
  type WriterOptions,
} from './safetensors/index.js';
export { defineSchema, parseJsonFile, schemaRegistry, writeJsonSchemas, type SchemaDefinition, type SchemaType } from './schema/index.js';
export { cosineSimilarity, maxAbsError, mse, perplexity, psnr, relativeL1, rmse, ssim, timeIt, type TimingStats } from './metrics/index.js';
export { Progress, createProgress, type ProgressOptions } from './progress/index.js';
export {
  decodeElements,
  dequantize,
  dequantizeSync,
  encodeElements,
  hadamard,
  packIntCT,
  packNibbles,
  quantize,
  quantizeSync,
  unpackIntCT,
  unpackNibbles,
  type ElementFormat,
  type QuantFormat,
  type QuantOptions,
  type Quantized,
} from './quant/index.js';
export { LinearPlan, gemmF32, measurePeak, type LinearOptions, type QuantizedWeight, type WeightFormat } from './linear/index.js';
export { SCHEMES, activationRangesSchema, outputSpecs, quantizeModule, type Scheme } from './checkpoint/index.js';
export {
  GaussianNoise,
  Qwen3Model,
  Qwen3Session,
  SOLVER_NAMES,
  Sampler,
  WanModel,
  WanSession,
  flowSigmas,
  modelDenoiser,
  sample,
  sampleToken,
  type BlockStats,
  type GenerateOptions,
  type Qwen3Config,
  type TokenSampleOptions,
  type CallInfo,
  type Denoiser,
  type Precision,
  type SampleOptions,
  type SolverName,
  type WanConfig,
} from './runtime/index.js';
export { BpeTokenizer } from './tokenizer/index.js';
