export { GaussianNoise } from './noise.js';
export { flowSigmas, sampleEuler, type SampleOptions } from './sampler.js';
export { PRECISIONS, WanSession, type BlockRunOptions, type BlockStats, type Precision } from './session.js';
export { WAN_EPS, WAN_HEAD_DIM, WanModel, inferWanConfig, readWanWeights, type WanConfig, type WanLoadOptions, type WanTrace, type WanWeights } from './wan.js';
