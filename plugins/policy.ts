/**
 * The contract between the diffusion plugins and a runtime that steps a DiT block by block
 * (adapters/embedded/pipeline.ts; the ComfyUI adapter drives the same policies from its hooks).
 * A sampling run makes one model call per step (CFG halves batched together); per call the
 * runtime asks, block by block, whether to skip (re-adding the block's cached residual delta) and,
 * if it runs, at which precision; it reports what each block measured.
 */
import type { BlockRunOptions, BlockStats, CallInfo } from '../core/src/runtime/index.js';

export type { CallInfo };

/** Signals a policy may read during a call; each is computed only when read. */
export interface CallSignals {
  /** The blocks' modulation input e0 of this call ([B, 6, dim], flattened). */
  timeEmbedding(): Float32Array;
  /** The residual stream right now ([B, L, dim], flattened copy). */
  tokens(): Float32Array;
}

/** Which blocks a call skips. */
export interface SkipPolicy {
  readonly id: string;
  /** A new video: forget everything. */
  reset(): void;
  beginCall(call: CallInfo, signals: CallSignals): void;
  /** true: skip block i in this call. Asked only for blocks that have run before. */
  skip(block: number): boolean;
  /** Block i ran in this call. */
  observe(block: number, stats: BlockStats, signals: CallSignals): void;
  /** The call finished; skipped: how many blocks it skipped. */
  endCall?(skipped: number): void;
}

/** At which precision a block runs. */
export interface PrecisionPolicy {
  readonly id: string;
  reset(): void;
  choose(block: number, call: CallInfo): BlockRunOptions;
  observe(block: number, stats: BlockStats): void;
}

/** Reuses a whole model output instead of calling the model (EasyCache-style). */
export interface OutputCache {
  readonly id: string;
  reset(): void;
  /** The velocity to use for this call without running the model, or null to run it. */
  reuse(call: CallInfo, x: Float32Array): Float32Array | null;
  /** The model ran: x in, v out. */
  observe(call: CallInfo, x: Float32Array, v: Float32Array): void;
}
