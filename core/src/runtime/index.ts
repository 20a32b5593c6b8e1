export { GaussianNoise } from './noise.js';
export { flowSigmas, sampleEuler, type SampleOptions } from './sampler.js';
export { WAN_EPS, WAN_HEAD_DIM, WanModel, inferWanConfig, readWanWeights, type WanConfig, type WanLoadOptions, type WanTrace } from './wan.js';
