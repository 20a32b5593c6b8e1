export { ABI_VERSION, candidatePaths, loadBinding, native, packageRoot } from './loader.js';
export { ISA_LEVELS, capabilities, setIsa, setNumThreads } from './capabilities.js';
export type { Capabilities, IsaLevel } from './capabilities.js';
export type { NativeBinding, NativeCapabilities, NativeTensor } from './binding.js';
export { callNative, callNativeAsync } from './call.js';
