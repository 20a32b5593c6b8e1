/**
 * The raw Node binding (native/node/*.cc), typed. Each area adds its section; core/src/<area>
 * wraps it into the public API, so nothing outside core/ calls the binding directly.
 */

/** A tensor as the binding takes it: a TypedArray over the data, the slip_dtype number, a shape. */
export interface NativeTensor {
  data: ArrayBufferView;
  dtype: number;
  shape: number[];
}

export interface NativeCapabilities {
  abiVersion: number;
  cpuFeatures: number;
  isaDetected: number;
  isaActive: number;
  numThreads: number;
  cudaCompiled: boolean;
  cudaDeviceCount: number;
  kernels: string;
}

export interface NativeBinding {
  // info
  abiVersion(): number;
  version(): string;
  capabilities(): NativeCapabilities;
  setIsa(isa: number): void;
  setNumThreads(n: number): void;
  dataAddress(array: ArrayBufferView): bigint;

  // quant

  // linear
}
