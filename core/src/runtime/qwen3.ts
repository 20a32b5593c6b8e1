/**
 * Qwen3Model: a Qwen3 causal LM (a Hugging Face Qwen3ForCausalLM folder: config.json and
 * safetensors shards) run by libslipstream's FP32 runtime (slip_qwen3_*): sessions hold a KV
 * cache, forward(tokens) appends tokens and gives the last token's logits, sample() picks the next
 * token (sampleToken / Sampler: greedy, or temperature / top-k / top-p with a seed; named apart
 * from the diffusion sampler's `sample`), generate() streams tokens.
 * Pruned models with per-layer widths (adapters/vllm/prune.ts's layer_* lists) load as well.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { SlipstreamError, invalidArgument } from '../errors/index.js';
import type { NativeQwen3Config, NativeQwen3Model, NativeQwen3Session } from '../native/binding.js';
import { callNative, callNativeAsync } from '../native/call.js';
import { native } from '../native/index.js';
import { Tensor } from '../tensor/index.js';
import { dequantizeCheckpoint } from '../checkpoint/compressed-tensors.js';
import { readCheckpoint } from '../checkpoint/read.js';

/** The architecture numbers of a Qwen3 model: slip_qwen3_config, field for field. */
export type Qwen3Config = NativeQwen3Config;

export interface Qwen3LoadOptions {
  /** Tokens a session may hold; default the config's max_position_embeddings. */
  maxContext?: number;
}

/** How the next token is picked: temperature 0 is greedy; the seed makes sampling repeatable. */
export interface TokenSampleOptions {
  /** >= 0; 0 = greedy. Default 1. */
  temperature?: number;
  /** (0, 1]; 1 = off. Default 1. */
  topP?: number;
  /** >= 0; 0 = off. Default 0. */
  topK?: number;
  /** Any integer in [0, 2^64); default 0. */
  seed?: number | bigint;
}

export interface GenerateOptions extends TokenSampleOptions {
  /** Tokens to generate at most. Default 256 (and never past the model's context). */
  maxTokens?: number;
  /** Token ids that end generation (not yielded). Default the config's eos_token_id. */
  stop?: readonly number[];
  /** Stops generation between two tokens. */
  signal?: AbortSignal;
}

/** One step of Qwen3Model.generateSteps(). */
export interface GeneratedStep {
  token: number;
  /** The logits row `token` was sampled from, before temperature or top-k/top-p. */
  logits: Float32Array;
}

type Json = Record<string, unknown>;

function field(json: Json, key: string, where: string, fallback?: number): number {
  const v = json[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new SlipstreamError('SLIP_E_SCHEMA', `${where}: expected a positive integer ${key}, got ${JSON.stringify(json[key])}`);
  }
  return v;
}

function intList(json: Json, key: string, layers: number, where: string): number[] | undefined {
  const v = json[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.length !== layers || !v.every((x) => Number.isInteger(x) && x >= 1)) {
    throw new SlipstreamError('SLIP_E_SCHEMA', `${where}: expected ${key} to list ${layers} positive integers (one per layer), got ${JSON.stringify(v)}`);
  }
  return v as number[];
}

/**
 * slip_qwen3_config from a Qwen3 config.json: rope_theta at the top level or in rope_parameters
 * (transformers 5); per-layer widths from layer_num_attention_heads / layer_num_key_value_heads /
 * layer_intermediate_size. Sliding-window attention and RoPE scaling are refused (not implemented).
 */
export function qwen3ConfigFromJson(json: unknown, where = 'config.json'): Qwen3Config & { eosTokenIds: number[] } {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new SlipstreamError('SLIP_E_SCHEMA', `${where}: expected an object`);
  const c = json as Json;
  if (c.model_type !== undefined && c.model_type !== 'qwen3') {
    throw new SlipstreamError('SLIP_E_SCHEMA', `${where}: expected model_type "qwen3", got ${JSON.stringify(c.model_type)}`);
  }
  if (c.use_sliding_window === true) throw new SlipstreamError('SLIP_E_UNSUPPORTED', `${where}: use_sliding_window true is not supported by the native runtime`);
  const rope = (typeof c.rope_parameters === 'object' && c.rope_parameters !== null ? c.rope_parameters : c.rope_scaling ?? {}) as Json;
  const ropeType = rope.rope_type ?? rope.type ?? 'default';
  if (ropeType !== 'default') throw new SlipstreamError('SLIP_E_UNSUPPORTED', `${where}: rope type ${JSON.stringify(ropeType)} is not supported (only "default")`);
  const ropeTheta = rope.rope_theta ?? c.rope_theta ?? 10000;
  if (typeof ropeTheta !== 'number' || !(ropeTheta > 0)) throw new SlipstreamError('SLIP_E_SCHEMA', `${where}: expected a positive rope_theta, got ${JSON.stringify(ropeTheta)}`);
  const eps = c.rms_norm_eps ?? 1e-6;
  if (typeof eps !== 'number' || !(eps > 0)) throw new SlipstreamError('SLIP_E_SCHEMA', `${where}: expected a positive rms_norm_eps, got ${JSON.stringify(eps)}`);
  const heads = field(c, 'num_attention_heads', where);
  const hidden = field(c, 'hidden_size', where);
  const layers = field(c, 'num_hidden_layers', where);
  const eos = c.eos_token_id;
  const eosTokenIds = Array.isArray(eos) ? eos.filter((x): x is number => Number.isInteger(x)) : Number.isInteger(eos) ? [eos as number] : [];
  const config: Qwen3Config & { eosTokenIds: number[] } = {
    vocabSize: field(c, 'vocab_size', where),
    hiddenSize: hidden,
    layers,
    heads,
    kvHeads: field(c, 'num_key_value_heads', where, heads),
    headDim: field(c, 'head_dim', where, Math.floor(hidden / heads)),
    intermediateSize: field(c, 'intermediate_size', where),
    maxContext: field(c, 'max_position_embeddings', where),
    ropeTheta,
    rmsNormEps: eps,
    tieWordEmbeddings: c.tie_word_embeddings === true,
    attentionBias: c.attention_bias === true,
    eosTokenIds,
  };
  const lists = {
    layerHeads: intList(c, 'layer_num_attention_heads', layers, where),
    layerKvHeads: intList(c, 'layer_num_key_value_heads', layers, where),
    layerIntermediate: intList(c, 'layer_intermediate_size', layers, where),
  };
  for (const [k, v] of Object.entries(lists)) if (v !== undefined) (config as unknown as Record<string, unknown>)[k] = v;
  return config;
}

function tokenArray(tokens: unknown, name: string): Int32Array {
  if (tokens instanceof Int32Array) return tokens;
  if (!Array.isArray(tokens) || !tokens.every((t) => Number.isInteger(t))) throw invalidArgument(name, 'an array of integer token ids', tokens);
  return Int32Array.from(tokens as number[]);
}

function seedOf(seed: number | bigint | undefined): bigint {
  if (seed === undefined) return 0n;
  if (typeof seed === 'number' && !Number.isSafeInteger(seed)) throw invalidArgument('seed', 'an integer', seed);
  const s = BigInt(seed);
  if (s < 0n || s >= 1n << 64n) throw invalidArgument('seed', 'an integer in [0, 2^64)', seed);
  return s;
}

/** Picks tokens one after another from logits rows with one seeded random stream. */
export class Sampler {
  readonly #params: { temperature?: number; topP?: number; topK?: number };
  #state: bigint;

  constructor(options: TokenSampleOptions = {}) {
    this.#params = { temperature: options.temperature, topP: options.topP, topK: options.topK };
    this.#state = seedOf(options.seed);
  }

  /** The next token for a logits row (F32 [vocab]). */
  next(logits: Float32Array): number {
    const t = new Tensor('F32', [logits.length], logits);
    const r = callNative(() => native().qwen3Sample(t.toNative(), this.#params, this.#state));
    this.#state = r.state;
    return r.token;
  }
}

/** One token from a logits row (a fresh Sampler: the same seed gives the same token). */
export function sampleToken(logits: Float32Array, options: TokenSampleOptions = {}): number {
  return new Sampler(options).next(logits);
}

/** One sequence over a model: its KV cache and position. Free it before the model. */
export class Qwen3Session {
  readonly #session: NativeQwen3Session;
  readonly #vocab: number;
  #freed = false;

  /** @internal made by Qwen3Model.createSession() */
  constructor(session: NativeQwen3Session, vocab: number) {
    this.#session = session;
    this.#vocab = vocab;
  }

  /** Appends `tokens` to the cache and resolves with the last token's logits (F32 [vocab]). */
  async forward(tokens: readonly number[] | Int32Array): Promise<Float32Array> {
    const ids = tokenArray(tokens, 'tokens');
    const out = Tensor.zeros('F32', [this.#vocab]);
    await callNativeAsync(() => this.#session.forward(ids, out.toNative()));
    return out.data;
  }

  /** As forward(), on the calling thread. */
  forwardSync(tokens: readonly number[] | Int32Array): Float32Array {
    const ids = tokenArray(tokens, 'tokens');
    const out = Tensor.zeros('F32', [this.#vocab]);
    callNative(() => this.#session.forwardSync(ids, out.toNative()));
    return out.data;
  }

  /** Appends `tokens` and resolves with every token's logits, F32 [n, vocab]. */
  async forwardAll(tokens: readonly number[] | Int32Array): Promise<Tensor<'F32'>> {
    const ids = tokenArray(tokens, 'tokens');
    const out = Tensor.zeros('F32', [ids.length, this.#vocab]);
    await callNativeAsync(() => this.#session.forward(ids, out.toNative()));
    return out;
  }

  /** Tokens held in the cache. */
  get position(): number {
    return callNative(() => this.#session.position());
  }

  /** Forgets the tokens from `position` on (keeps a shared prompt prefix). */
  truncate(position: number): void {
    callNative(() => this.#session.truncate(position));
  }

  reset(): void {
    callNative(() => this.#session.reset());
  }

  free(): void {
    if (this.#freed) return;
    callNative(() => this.#session.free());
    this.#freed = true;
  }
}

export class Qwen3Model {
  readonly config: Readonly<Qwen3Config>;
  /** Token ids that end a generation by default (config.json's eos_token_id). */
  readonly eosTokenIds: readonly number[];
  readonly #model: NativeQwen3Model;

  private constructor(model: NativeQwen3Model, config: Qwen3Config, eos: number[]) {
    this.#model = model;
    this.config = Object.freeze({ ...config });
    this.eosTokenIds = Object.freeze([...eos]);
  }

  /** From a Hugging Face Qwen3 folder: config.json and safetensors (sharded with an index, or one file). */
  static async load(dir: string, options: Qwen3LoadOptions = {}): Promise<Qwen3Model> {
    const configPath = join(dir, 'config.json');
    let json: unknown;
    try {
      json = JSON.parse(await readFile(configPath, 'utf8'));
    } catch (err) {
      throw new SlipstreamError('SLIP_E_IO', `cannot read ${configPath}: ${(err as Error).message}`, { cause: err });
    }
    const { eosTokenIds, ...config } = qwen3ConfigFromJson(json, configPath);
    if (options.maxContext !== undefined) config.maxContext = options.maxContext;
    let tensors = await readCheckpoint(dir);
    // A `slipstream prepare` output (compressed-tensors): decoded to FP32 once, then run as any other.
    const qc = (json as Record<string, unknown>).quantization_config;
    if (qc !== undefined) tensors = dequantizeCheckpoint(tensors, qc, configPath);
    return Qwen3Model.fromTensors(tensors, config, eosTokenIds);
  }

  /** From named tensors (F32, F16 or BF16, Hugging Face names) and a config. */
  static async fromTensors(weights: Map<string, Tensor>, config: Qwen3Config, eosTokenIds: number[] = []): Promise<Qwen3Model> {
    const names = [...weights.keys()];
    const tensors = names.map((n) => weights.get(n)!.toNative());
    const model = await callNativeAsync(() => native().qwen3ModelCreate(names, tensors, config));
    return new Qwen3Model(model, config, eosTokenIds);
  }

  /** A new, empty sequence. */
  createSession(): Qwen3Session {
    this.#live();
    return new Qwen3Session(callNative(() => this.#model.createSession()), this.config.vocabSize);
  }

  /** Resident bytes of the weights as held. */
  weightBytes(): number {
    this.#live();
    return callNative(() => this.#model.weightBytes());
  }

  /** Layer `layer`'s query heads, KV heads and MLP channels. */
  layerWidths(layer: number): { heads: number; kvHeads: number; intermediate: number } {
    this.#live();
    return callNative(() => this.#model.layerWidths(layer));
  }

  /**
   * Yields generated tokens one at a time: the prompt is prefilled in one forward, then each
   * token is sampled and fed back. Ends at a stop token (not yielded), after maxTokens, at the
   * context limit, or when `signal` aborts. Runs in its own session, freed at the end.
   */
  async *generate(promptIds: readonly number[], options: GenerateOptions = {}): AsyncGenerator<number, void, undefined> {
    for await (const step of this.generateSteps(promptIds, options)) yield step.token;
  }

  /**
   * As generate(), each token with the logits row it was sampled from (F32 [vocab], a fresh array
   * per step): servers need them for log-probs, and one loop keeps both paths picking alike.
   */
  async *generateSteps(promptIds: readonly number[], options: GenerateOptions = {}): AsyncGenerator<GeneratedStep, void, undefined> {
    this.#live();
    const prompt = tokenArray(promptIds, 'promptIds');
    if (prompt.length === 0) throw invalidArgument('promptIds', 'at least one token', '[]');
    const maxTokens = options.maxTokens ?? 256;
    if (!Number.isInteger(maxTokens) || maxTokens < 0) throw invalidArgument('maxTokens', 'a non-negative integer', maxTokens);
    const stop = new Set(options.stop ?? this.eosTokenIds);
    const sampler = new Sampler(options);
    const session = this.createSession();
    try {
      let logits = await session.forward(prompt);
      for (let n = 0; n < maxTokens && !options.signal?.aborted; n++) {
        const token = sampler.next(logits);
        if (stop.has(token)) return;
        yield { token, logits };
        if (session.position >= this.config.maxContext) return;
        logits = await session.forward([token]);
      }
    } finally {
      session.free();
    }
  }

  #live(): void {
    if (this.#model.freed) throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', 'expected a live Qwen3Model, got one already freed (free() was called)');
  }

  get freed(): boolean {
    return this.#model.freed;
  }

  /** Releases the native model now (else the garbage collector does). Free its sessions first. */
  free(): void {
    if (!this.#model.freed) callNative(() => this.#model.free());
  }
}
