export { GaussianNoise } from './noise.js';
export { flowSigmas, modelDenoiser, sample, type CallInfo, type Denoiser, type SampleOptions } from './sampler.js';
export { SOLVER_NAMES, createSolver, type Solver, type SolverName } from './solvers.js';
export { PRECISIONS, WanSession, type BlockRunOptions, type BlockStats, type GuardPrecision, type Precision } from './session.js';
export { WAN_EPS, WAN_HEAD_DIM, WanModel, inferWanConfig, type WanConfig, type WanLoadOptions, type WanTrace, type WanWeights } from './wan.js';
export {
  Qwen3Model,
  Qwen3Session,
  Sampler,
  qwen3ConfigFromJson,
  sampleToken,
  type GenerateOptions,
  type Qwen3Config,
  type Qwen3LoadOptions,
  type TokenSampleOptions,
} from './qwen3.js';
