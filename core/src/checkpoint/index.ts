export { SCHEMES, SCHEME_SPECS, checkWeight, dequantizeCheckpoint, ignoreMatcher, outputSpecs, quantizeModule } from './compressed-tensors.js';
export type { ModuleOptions, OutputSpec, Scheme } from './compressed-tensors.js';
export { activationRangesSchema } from './activation-ranges.js';
export { readCheckpoint } from './read.js';
