/** What this build and this machine can do, in words a user can act on. */
import { callNative } from './call.js';
import { native } from './loader.js';

export const ISA_LEVELS = ['portable', 'avx2', 'avx512', 'avx512vnni', 'amx'] as const;
export type IsaLevel = (typeof ISA_LEVELS)[number];

const CPU_FEATURES = ['avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512vl', 'avx512vnni', 'avx512bf16', 'avxvnni', 'amx-tile', 'amx-bf16', 'amx-int8'] as const;

export interface Capabilities {
  version: string;
  abiVersion: number;
  cpuFeatures: string[];
  isaDetected: IsaLevel;
  isaActive: IsaLevel;
  numThreads: number;
  cuda: { compiled: boolean; devices: number };
  kernels: string[];
}

export function capabilities(): Capabilities {
  const b = native();
  const c = b.capabilities();
  return {
    version: b.version(),
    abiVersion: c.abiVersion,
    cpuFeatures: CPU_FEATURES.filter((_, i) => (c.cpuFeatures & (1 << i)) !== 0),
    isaDetected: ISA_LEVELS[c.isaDetected],
    isaActive: ISA_LEVELS[c.isaActive],
    numThreads: c.numThreads,
    cuda: { compiled: c.cudaCompiled, devices: c.cudaDeviceCount },
    kernels: c.kernels ? c.kernels.split(',') : [],
  };
}

/** Dispatch kernels at a lower instruction-set level (tests compare levels). */
export function setIsa(level: IsaLevel): void {
  callNative(() => native().setIsa(ISA_LEVELS.indexOf(level)));
}

export function setNumThreads(n: number): void {
  callNative(() => native().setNumThreads(n));
}
