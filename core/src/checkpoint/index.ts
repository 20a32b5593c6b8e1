export { SCHEMES, SCHEME_SPECS, checkWeight, outputSpecs, quantizeModule } from './compressed-tensors.js';
export type { ModuleOptions, OutputSpec, Scheme } from './compressed-tensors.js';
export { activationRangesSchema } from './activation-ranges.js';
