/**
 * WanModel: a Wan2.1 text-to-video DiT (state-dict names as Wan2.1 / ComfyUI) run by
 * libslipstream's FP32 runtime (slip_wan_model_create / slip_wan_forward): linears through FP32
 * linear plans, attention through slip_attn_dense. Weights load from a folder of safetensors
 * shards with a `*.safetensors.index.json`, or a single `.safetensors` file; F16/BF16 weights are
 * widened to FP32 natively.
 */
import { join } from 'node:path';

import { SlipstreamError, invalidArgument } from '../errors/index.js';
import type { NativeWanConfig, NativeWanModel } from '../native/binding.js';
import { callNative, callNativeAsync } from '../native/call.js';
import { native } from '../native/index.js';
import { readCheckpoint } from '../checkpoint/read.js';
import { SafetensorsReader } from '../safetensors/index.js';
import { Tensor, shapeToString } from '../tensor/index.js';
import { WanSession } from './session.js';

/** The architecture numbers of a Wan2.1 DiT: slip_wan_config, field for field (declared once,
 *  with the binding). */
export type WanConfig = NativeWanConfig;

/** Wan2.1's head dim: ComfyUI infers heads = dim / 128, and so do we. */
export const WAN_HEAD_DIM = 128;
/** Wan2.1's LayerNorm / RMSNorm epsilon; not stored in the weights. */
export const WAN_EPS = 1e-6;

/** How the blocks' linears are held: 'fp32' (the baseline) or 'nvfp4' (6Bit-Diffusion: one
 *  4-bit copy, rotated by a blocked Hadamard, serving FULL, INT8 and NVFP4 activations). */
export type WanWeights = 'fp32' | 'nvfp4';

export interface WanLoadOptions {
  /** Fields that override what is inferred from the weights' shapes. */
  config?: Partial<WanConfig>;
  /** Default 'fp32'. */
  weights?: WanWeights;
  /** NVFP4 weights: Hadamard rotation block on K (0 = none). Default 128, or the checkpoint's. */
  hadamardBlock?: number;
  /**
   * NVFP4 weights: a safetensors file of block linears already quantized (compressed-tensors
   * names: <linear>.weight_packed, .weight_scale, .weight_global_scale; metadata hadamard_block),
   * e.g. GPTQ's from models/wan-mini/quantize_nvfp4.py. They replace those linears' `.weight`;
   * the rest of the model comes from `path`. Default: every block linear quantized at load.
   */
  nvfp4Checkpoint?: string;
}

const WEIGHTS_CODE: Record<WanWeights, number> = { fp32: 0, nvfp4: 1 };

/** The outputs of forwardTrace: the velocity and the residual stream [layers + 1, B, L, dim]. */
export interface WanTrace {
  out: Tensor<'F32'>;
  hidden: Tensor<'F32'>;
}

function shapeOf(shapes: Map<string, readonly number[]>, name: string): readonly number[] {
  const s = shapes.get(name);
  if (s === undefined) throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected a weight named ${JSON.stringify(name)} to infer the Wan config, got none`);
  return s;
}

/**
 * The config as ComfyUI's Wan detection infers it: dim from head.modulation, heads = dim / 128,
 * ffn_dim from blocks.0.ffn.0's bias, channels and patch from patch_embedding, out channels from the
 * head's rows / patch volume, layers by counting blocks; eps is Wan's 1e-6.
 */
export function inferWanConfig(shapes: Map<string, readonly number[]>): WanConfig {
  const dim = shapeOf(shapes, 'head.modulation')[2]!;
  const pe = shapeOf(shapes, 'patch_embedding.weight');
  const patch: [number, number, number] = [pe[2]!, pe[3]!, pe[4]!];
  let layers = 0;
  while (shapes.has(`blocks.${layers}.modulation`)) layers++;
  return {
    dim,
    ffnDim: shapeOf(shapes, 'blocks.0.ffn.0.bias')[0]!,
    heads: Math.max(1, Math.floor(dim / WAN_HEAD_DIM)),
    layers,
    inChannels: pe[1]!,
    outChannels: shapeOf(shapes, 'head.head.weight')[0]! / (patch[0] * patch[1] * patch[2]),
    textDim: shapeOf(shapes, 'text_embedding.0.weight')[1]!,
    freqDim: shapeOf(shapes, 'time_embedding.0.weight')[1]!,
    patch,
    eps: WAN_EPS,
  };
}

function requireF32(value: unknown, name: string): Tensor<'F32'> {
  if (!(value instanceof Tensor)) throw invalidArgument(name, 'a Tensor', value);
  if (value.dtype !== 'F32') {
    throw new SlipstreamError('SLIP_E_DTYPE_MISMATCH', `expected an F32 tensor for ${name}, got ${value.dtype} ${shapeToString(value.shape)}`);
  }
  return value as Tensor<'F32'>;
}

export class WanModel {
  readonly config: Readonly<WanConfig>;
  readonly #model: NativeWanModel;

  readonly weights: WanWeights;
  /** Number of weight elements in the checkpoint it was made from. */
  readonly parameters: number;

  private constructor(model: NativeWanModel, config: WanConfig, weights: WanWeights, parameters: number) {
    this.#model = model;
    this.weights = weights;
    this.parameters = parameters;
    this.config = Object.freeze({ ...config, patch: [...config.patch] as [number, number, number] });
  }

  /** From a folder (shards + index json, or one file) or a .safetensors path. */
  static async load(path: string, options: WanLoadOptions = {}): Promise<WanModel> {
    const weights = await readCheckpoint(path);
    if (options.nvfp4Checkpoint === undefined) return WanModel.fromTensors(weights, options);
    if (options.weights !== 'nvfp4') {
      throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected weights 'nvfp4' with an nvfp4Checkpoint, got ${JSON.stringify(options.weights ?? 'fp32')}`);
    }
    const file = options.nvfp4Checkpoint;
    const r = await SafetensorsReader.open(file);
    let hadamard: number;
    try {
      hadamard = Number(r.metadata.hadamard_block ?? NaN);
      if (!Number.isInteger(hadamard) || hadamard < 0) {
        throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected an integer "hadamard_block" in the metadata of ${file}, got ${JSON.stringify(r.metadata.hadamard_block)}`);
      }
      if (options.hadamardBlock !== undefined && options.hadamardBlock !== hadamard) {
        throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected hadamardBlock ${options.hadamardBlock} to match ${file}'s hadamard_block ${hadamard}, got a mismatch`);
      }
      let replaced = 0;
      for (const name of r.names()) {
        const m = /^(.*)\.(weight_packed|weight_scale|weight_global_scale)$/.exec(name);
        if (m === null) continue; // biases and anything else come from the model itself
        if (m[2] === 'weight_packed') {
          if (!weights.delete(`${m[1]}.weight`)) {
            throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected ${name} in ${file} to replace a weight "${m[1]}.weight" of ${path}, got no such weight`);
          }
          replaced++;
        }
        weights.set(name, await r.tensor(name));
      }
      if (replaced === 0) throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected NVFP4 linears (*.weight_packed) in ${file}, got none`);
    } finally {
      await r.close();
    }
    return WanModel.fromTensors(weights, { ...options, hadamardBlock: hadamard });
  }

  /** From named tensors (F32, F16 or BF16); the config is inferred from their shapes unless given. */
  static async fromTensors(weights: Map<string, Tensor>, options: WanLoadOptions = {}): Promise<WanModel> {
    const shapes = new Map([...weights].map(([n, t]) => [n, t.shape] as const));
    const config: WanConfig = { ...inferWanConfig(shapes), ...options.config };
    const kind = options.weights ?? 'fp32';
    if (!(kind in WEIGHTS_CODE)) throw invalidArgument('weights', `one of ${Object.keys(WEIGHTS_CODE).join(', ')}`, kind);
    const names = [...weights.keys()];
    const tensors = names.map((n) => weights.get(n)!.toNative());
    const nativeOptions = { weights: WEIGHTS_CODE[kind], ...(options.hadamardBlock !== undefined ? { hadamardBlock: options.hadamardBlock } : {}) };
    const model = await callNativeAsync(() => native().wanModelCreate(names, tensors, config satisfies NativeWanConfig, nativeOptions));
    return new WanModel(model, config, kind, tensors.reduce((n, _t, i) => n + weights.get(names[i]!)!.numel, 0));
  }

  /** Resident bytes of the weights as held (plans, norms, modulations, biases). */
  weightBytes(): number {
    this.#live();
    return callNative(() => this.#model.weightBytes());
  }

  /** A session that steps this model's blocks one at a time (caches, mixed precision). Free it
   *  before the model. */
  createSession(): WanSession {
    this.#live();
    return new WanSession(callNative(() => this.#model.createSession()), this.config);
  }

  #live(): void {
    if (this.#model.freed) {
      throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', 'expected a live WanModel, got one already freed (free() was called)');
    }
  }

  get freed(): boolean {
    return this.#model.freed;
  }

  #prepare(x: unknown, t: unknown, context: unknown, trace: boolean) {
    this.#live();
    const xs = requireF32(x, 'x');
    requireF32(t, 't');
    requireF32(context, 'context');
    const c = this.config;
    if (xs.rank !== 5 || xs.shape[1] !== c.inChannels) {
      throw new SlipstreamError('SLIP_E_SHAPE_MISMATCH', `expected shape [B, ${c.inChannels}, F, H, W] for x, got ${shapeToString(xs.shape)}`);
    }
    const [b, , f, h, w] = xs.shape as [number, number, number, number, number];
    const out = Tensor.zeros('F32', [b, c.outChannels, f, h, w]);
    const tokens = Math.floor(f / c.patch[0]) * Math.floor(h / c.patch[1]) * Math.floor(w / c.patch[2]);
    const hidden = trace ? Tensor.zeros('F32', [c.layers + 1, b, tokens, c.dim]) : null;
    const args = [xs.toNative(), (t as Tensor).toNative(), (context as Tensor).toNative(), out.toNative(), hidden?.toNative() ?? null] as const;
    return { args, out, hidden };
  }

  /**
   * The velocity for latents x [B, in, F, H, W], timesteps t [B] (sigma * 1000) and context
   * [B, Lc, textDim], all F32; resolves with F32 [B, out, F, H, W]. Runs on the libuv pool.
   */
  async forward(x: Tensor, t: Tensor, context: Tensor): Promise<Tensor<'F32'>> {
    const { args, out } = this.#prepare(x, t, context, false);
    await callNativeAsync(() => this.#model.forward(...args));
    return out;
  }

  /** As forward(), on the calling thread. */
  forwardSync(x: Tensor, t: Tensor, context: Tensor): Tensor<'F32'> {
    const { args, out } = this.#prepare(x, t, context, false);
    callNative(() => this.#model.forwardSync(...args));
    return out;
  }

  /** forward() plus the residual stream: hidden[0] after the patch embedding, hidden[i] after block i - 1. */
  async forwardTrace(x: Tensor, t: Tensor, context: Tensor): Promise<WanTrace> {
    const { args, out, hidden } = this.#prepare(x, t, context, true);
    await callNativeAsync(() => this.#model.forward(...args));
    return { out, hidden: hidden! };
  }

  /** Releases the native model now (else the garbage collector does). Idempotent; not while a forward is in flight. */
  free(): void {
    if (!this.#model.freed) callNative(() => this.#model.free());
  }
}
