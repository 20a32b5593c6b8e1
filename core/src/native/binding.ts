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

/** slip_quant_params as the binding takes it: omitted fields keep slip_quant_params_init's defaults. */
export interface NativeQuantParams {
  format: number;
  granularity?: number;
  groupSize?: number;
  blockRows?: number;
  blockCols?: number;
  rounding?: number;
  flags?: number;
  seed?: number | bigint;
  globalScale?: number;
}

/** slip_qweight as the binding takes it (ToQweight in native/node/gemm.cc): params fields left out keep
 * slip_quant_params_init's defaults for the format; format 7 is an unquantized F32 weight. */
export interface NativeQweight {
  format: number;
  granularity?: number;
  groupSize?: number;
  blockRows?: number;
  blockCols?: number;
  codes: NativeTensor;
  scales?: NativeTensor | null;
  global?: NativeTensor | null;
}

/** slip_linear_params: actQuant 0 = none, 1 = the weight format's dynamic activation scheme, 2 = per-token INT8. */
export interface NativeLinearParams {
  actQuant?: number;
  actGlobalScale?: number;
}

/** A slip_linear_plan_t owned by a JS object; freed by free() or the garbage collector. */
export interface NativeLinearPlan {
  run(x: NativeTensor, bias: NativeTensor | null, y: NativeTensor): Promise<void>;
  runSync(x: NativeTensor, bias: NativeTensor | null, y: NativeTensor): void;
  free(): void;
  readonly freed: boolean;
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
  elementEncode(format: number, values: Float32Array, rounding?: number, seed?: number | bigint): Uint8Array;
  elementDecode(format: number, codes: Uint8Array): Float32Array;
  packNibbles(codes: Uint8Array): Uint8Array;
  unpackNibbles(packed: Uint8Array): Uint8Array;
  packIntCT(values: Int8Array, rows: number, cols: number, bits: number): Int32Array;
  unpackIntCT(packed: Int32Array, rows: number, cols: number, bits: number): Int8Array;
  quantShapes(params: NativeQuantParams, shape: number[]): { codes: number[]; scales: number[]; global: number[] | null };
  quantize(x: NativeTensor, params: NativeQuantParams, codes: NativeTensor, scales: NativeTensor, global?: NativeTensor | null): Promise<void>;
  quantizeSync(x: NativeTensor, params: NativeQuantParams, codes: NativeTensor, scales: NativeTensor, global?: NativeTensor | null): void;
  dequantize(codes: NativeTensor, scales: NativeTensor, global: NativeTensor | null, params: NativeQuantParams, out: NativeTensor): Promise<void>;
  dequantizeSync(codes: NativeTensor, scales: NativeTensor, global: NativeTensor | null, params: NativeQuantParams, out: NativeTensor): void;
  /** In place. */
  hadamard(x: NativeTensor, block: number): void;

  // linear
  gemmF32(x: NativeTensor, w: NativeTensor, bias: NativeTensor | null, y: NativeTensor): void;
  linearPlanCreate(w: NativeQweight, params?: NativeLinearParams): NativeLinearPlan;
  /** slip_bench_peak: kind 0 = FP32 FMA, 1 = INT8 VNNI; resolves with ops per second. */
  benchPeak(kind: number, seconds: number): Promise<number>;

  // attention-dense (native/node/attention-dense.cc): out and lse are caller-allocated; omitted
  // options keep slip_attn_params_init's defaults. Block-sparse calls return the density.
  attnDense(q: NativeTensor, k: NativeTensor, v: NativeTensor, out: NativeTensor, options?: NativeAttnOptions): Promise<void>;
  attnDenseSync(q: NativeTensor, k: NativeTensor, v: NativeTensor, out: NativeTensor, options?: NativeAttnOptions): void;
  attnBlockSparse(q: NativeTensor, k: NativeTensor, v: NativeTensor, out: NativeTensor, blockMask: NativeTensor,
    blockQ: number, blockK: number, options?: NativeAttnOptions): Promise<number>;
  attnBlockSparseSync(q: NativeTensor, k: NativeTensor, v: NativeTensor, out: NativeTensor, blockMask: NativeTensor,
    blockQ: number, blockK: number, options?: NativeAttnOptions): number;

  // attention-sparse (native/node/attention-sparse.cc, attention-sla.cc): params fields left out
  // keep slip_sparse_params_init's / slip_sla_params_init's defaults, which *Defaults() return.
  sparseDefaults(): Required<NativeSparseParams>;
  attnSparsePredict(q: NativeTensor, k: NativeTensor, blockMask: NativeTensor, options: NativeAttnOptions, sparse: NativeSparseParams): number;
  attnSparse(q: NativeTensor, k: NativeTensor, v: NativeTensor, out: NativeTensor, blockMask: NativeTensor | null,
    options: NativeAttnOptions, sparse: NativeSparseParams): Promise<number>;
  attnSparseSync(q: NativeTensor, k: NativeTensor, v: NativeTensor, out: NativeTensor, blockMask: NativeTensor | null,
    options: NativeAttnOptions, sparse: NativeSparseParams): number;
  slaDefaults(): Required<NativeSlaParams>;
  slaRoute(q: NativeTensor, k: NativeTensor, routerWq: NativeTensor | null, routerWk: NativeTensor | null, route: NativeTensor,
    options: NativeAttnOptions, sla: NativeSlaParams): number;
  slaForward(q: NativeTensor, k: NativeTensor, v: NativeTensor, route: NativeTensor, alpha: NativeTensor, projW: NativeTensor,
    projB: NativeTensor | null, out: NativeTensor, options: NativeAttnOptions, sla: NativeSlaParams): Promise<void>;
  slaForwardSync(q: NativeTensor, k: NativeTensor, v: NativeTensor, route: NativeTensor, alpha: NativeTensor, projW: NativeTensor,
    projB: NativeTensor | null, out: NativeTensor, options: NativeAttnOptions, sla: NativeSlaParams): void;
  slaBackward(q: NativeTensor, k: NativeTensor, v: NativeTensor, route: NativeTensor, alpha: NativeTensor, projW: NativeTensor,
    projB: NativeTensor | null, dout: NativeTensor, dq: NativeTensor, dk: NativeTensor, dv: NativeTensor, dalpha: NativeTensor,
    dprojW: NativeTensor, dprojB: NativeTensor | null, options: NativeAttnOptions, sla: NativeSlaParams): Promise<void>;
  slaBackwardSync(q: NativeTensor, k: NativeTensor, v: NativeTensor, route: NativeTensor, alpha: NativeTensor, projW: NativeTensor,
    projB: NativeTensor | null, dout: NativeTensor, dq: NativeTensor, dk: NativeTensor, dv: NativeTensor, dalpha: NativeTensor,
    dprojW: NativeTensor, dprojB: NativeTensor | null, options: NativeAttnOptions, sla: NativeSlaParams): void;

  // runtime (native/node/runtime.cc): a Wan2.1 DiT from named weights (F32/F16/BF16), FP32 forward.
  wanModelCreate(names: string[], tensors: NativeTensor[], config: NativeWanConfig, options?: NativeWanModelOptions): Promise<NativeWanModel>;
  wanModelCreateSync(names: string[], tensors: NativeTensor[], config: NativeWanConfig, options?: NativeWanModelOptions): NativeWanModel;

  // runtime-qwen3 (native/node/runtime-qwen3.cc): a Qwen3 LLM from named weights (F32/BF16), FP32
  // forward over a per-session KV cache; sampling of one logits row with a caller-held state.
  qwen3ModelCreate(names: string[], tensors: NativeTensor[], config: NativeQwen3Config, options?: Record<string, never>): Promise<NativeQwen3Model>;
  qwen3ModelCreateSync(names: string[], tensors: NativeTensor[], config: NativeQwen3Config, options?: Record<string, never>): NativeQwen3Model;
  qwen3Sample(logits: NativeTensor, params: NativeQwen3SampleParams, state: bigint): { token: number; state: bigint };

  // attention-sage (native/node/attention-sage.cc): options are slip_attn_params, the mask and
  // (forward) lse, plus slip_sage_params fields; omitted fields keep slip_sage_params_init's
  // defaults. variant: 0 SAGE2, 1 SAGE2PP; granularity: 0 block, 1 warp, 2 thread.
  attnSage(q: NativeTensor, k: NativeTensor, v: NativeTensor, out: NativeTensor,
    options?: NativeAttnOptions & NativeSageParams): Promise<void>;
  attnSageSync(q: NativeTensor, k: NativeTensor, v: NativeTensor, out: NativeTensor,
    options?: NativeAttnOptions & NativeSageParams): void;
  attnSageBackward(q: NativeTensor, k: NativeTensor, v: NativeTensor, out: NativeTensor, dOut: NativeTensor, lse: NativeTensor,
    dq: NativeTensor, dk: NativeTensor, dv: NativeTensor, options?: NativeAttnOptions & NativeSageParams): Promise<void>;
  attnSageBackwardSync(q: NativeTensor, k: NativeTensor, v: NativeTensor, out: NativeTensor, dOut: NativeTensor, lse: NativeTensor,
    dq: NativeTensor, dk: NativeTensor, dv: NativeTensor, options?: NativeAttnOptions & NativeSageParams): void;
}

/** slip_sage_params (attention-sage). */
export interface NativeSageParams {
  variant?: number;
  granularity?: number;
  smoothK?: boolean;
  smoothQ?: boolean;
  blockQ?: number;
  blockK?: number;
  warpQ?: number;
  quantize?: boolean;
}

/** slip_sparse_params (attention-sparse). */
export interface NativeSparseParams {
  blockQ?: number;
  blockK?: number;
  topk?: number;
  topp?: number;
  simThreshold?: number;
  attentionSink?: boolean;
  smoothK?: boolean;
}

/** slip_sla_params (attention-sparse); featureMap: 0 softmax, 1 elu+1, 2 relu. */
export interface NativeSlaParams {
  blockQ?: number;
  blockK?: number;
  critical?: number;
  negligible?: number;
  featureMap?: number;
  smoothK?: boolean;
}

/** slip_attn_params plus the optional tensors of an attention call (attention-dense). */
export interface NativeAttnOptions {
  layout?: number;
  causal?: boolean;
  scale?: number;
  mask?: NativeTensor | null;
  cuSeqlensQ?: NativeTensor | null;
  cuSeqlensK?: NativeTensor | null;
  lse?: NativeTensor | null;
}

// runtime

/** slip_wan_config (runtime): every field required. */
export interface NativeWanConfig {
  dim: number;
  ffnDim: number;
  heads: number;
  layers: number;
  inChannels: number;
  outChannels: number;
  textDim: number;
  freqDim: number;
  patch: [number, number, number];
  eps: number;
}

/** A slip_wan_model_t owned by a JS object; freed by free() or the garbage collector. out and
 * hidden ([layers + 1, B, L, dim], optional) are caller-allocated. */
export interface NativeWanModel {
  forward(x: NativeTensor, t: NativeTensor, context: NativeTensor, out: NativeTensor, hidden?: NativeTensor | null): Promise<void>;
  forwardSync(x: NativeTensor, t: NativeTensor, context: NativeTensor, out: NativeTensor, hidden?: NativeTensor | null): void;
  createSession(): NativeWanSession;
  weightBytes(): number;
  free(): void;
  readonly freed: boolean;
}

/** slip_wan_model_options: weights 0 = F32, 1 = NVFP4 (blocks' linears); omitted keys keep the
 * native defaults (F32, Hadamard block 128). */
export interface NativeWanModelOptions {
  weights?: number;
  hadamardBlock?: number;
}

/** slip_wan_block_options: precision 0 FULL, 1 INT8, 2 NVFP4; outlierGuard 0 = off. */
export interface NativeWanBlockOptions {
  precision?: number;
  outlierGuard?: number;
  guardPrecision?: number;
  attention?: number;
  sparseTopk?: number;
  sparseTopp?: number;
}

/** slip_wan_block_stats. */
export interface NativeWanBlockStats {
  inputL1: number;
  deltaL1: number;
  deltaChange: number;
  maxOutlier: number;
  fullLinears: number;
  lowbitLinears: number;
  attentionSparsity: number;
}

/** A slip_wan_session_t: every method runs inline (one block per call). */
export interface NativeWanSession {
  begin(x: NativeTensor, t: NativeTensor, context: NativeTensor): void;
  runBlock(block: number, options: NativeWanBlockOptions): NativeWanBlockStats;
  skipBlock(block: number): void;
  finish(out: NativeTensor): void;
  readTokens(out: NativeTensor): void;
  writeTokens(input: NativeTensor): void;
  timeEmbedding(out: NativeTensor): void;
  reset(): void;
  free(): void;
}

// runtime-qwen3

/** slip_qwen3_config; the layer* lists (one entry per layer) replace the uniform widths. */
export interface NativeQwen3Config {
  vocabSize: number;
  hiddenSize: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediateSize: number;
  maxContext: number;
  ropeTheta: number;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
  attentionBias?: boolean;
  layerHeads?: number[];
  layerKvHeads?: number[];
  layerIntermediate?: number[];
}

/** A slip_qwen3_model_t owned by a JS object; freed by free() (after its sessions) or the GC. */
export interface NativeQwen3Model {
  createSession(): NativeQwen3Session;
  weightBytes(): number;
  layerWidths(layer: number): { heads: number; kvHeads: number; intermediate: number };
  free(): void;
  readonly freed: boolean;
}

/** A slip_qwen3_session_t: forward appends tokens to the KV cache and writes logits ([vocab] for
 * the last token, [n, vocab] for all, or null); one forward in flight at a time. */
export interface NativeQwen3Session {
  forward(tokens: Int32Array, logits: NativeTensor | null): Promise<void>;
  forwardSync(tokens: Int32Array, logits: NativeTensor | null): void;
  position(): number;
  truncate(position: number): void;
  reset(): void;
  free(): void;
}

/** slip_qwen3_sample_params; omitted keys keep the defaults (temperature 1, topP 1, topK 0). */
export interface NativeQwen3SampleParams {
  temperature?: number;
  topP?: number;
  topK?: number;
}
