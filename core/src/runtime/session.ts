/**
 * WanSession: one Wan forward taken apart block by block (slip_wan_session_*), for the policies
 * that decide per block: skip it and re-add its cached residual delta (block caches), or run it
 * at FULL, BF16, INT8 or NVFP4 activation precision (mixed precision). Every call runs inline: a block
 * of a small model is milliseconds, and the policies need its statistics before the next one.
 */
import { SlipstreamError, invalidArgument } from '../errors/index.js';
import type { NativeWanSession } from '../native/binding.js';
import { callNative } from '../native/call.js';
import { Tensor } from '../tensor/index.js';
import type { WanConfig } from './wan.js';

/** FP32; BF16 against the exact NVFP4 weight (AMX tiles where the CPU has them); INT8; NVFP4. */
export type Precision = 'full' | 'bf16' | 'int8' | 'nvfp4';
export const PRECISIONS: readonly Precision[] = ['full', 'bf16', 'int8', 'nvfp4'];
const PRECISION_CODE: Record<Precision, number> = { full: 0, int8: 1, nvfp4: 2, bf16: 3 };
/** What the outlier guard may promote a linear to. */
export type GuardPrecision = 'full' | 'bf16';

export interface BlockRunOptions {
  /** Activation precision of the block's linears. Default 'full'. */
  precision?: Precision;
  /** > 0: linears whose input has max|X|/mean|X| above it run at guardPrecision (PDR: 25). */
  outlierGuard?: number;
  /** The high precision of the outlier guard. Default 'full'. */
  guardPrecision?: GuardPrecision;
  /** Self-attention block-sparse on a SpargeAttention2 mask: Top-k fraction and/or Top-p mass
   *  (0 = rule off; both 0 = dense). */
  sparseTopk?: number;
  sparseTopp?: number;
  /** Self-attention in INT8 (q·k, per token, smooth-K) and BF16 (p·v): slip_attn_lowbit's recipe. */
  lowBitAttention?: boolean;
}

/** What one runBlock measured (means over every element of the block's input/residual). */
export interface BlockStats {
  inputL1: number;
  deltaL1: number;
  /** DMPQ's Γ: mean|out − in| / mean|in|. */
  gamma: number;
  /** mean|δ − δ_prev| / mean|δ_prev| since the block last ran; null on its first run. */
  deltaChange: number | null;
  /** Largest max|X|/mean|X| over the inputs of the block's linears. */
  maxOutlier: number;
  fullLinears: number;
  lowbitLinears: number;
  /** Fraction of self-attention key blocks skipped (0 when dense). */
  attentionSparsity: number;
}

export class WanSession {
  #session: NativeWanSession | null;
  #shape: { batch: number; tokens: number; out: number[] } | null = null;

  /** Made by WanModel.createSession(). */
  constructor(session: NativeWanSession, readonly config: Readonly<WanConfig>) {
    this.#session = session;
  }

  #live(): NativeWanSession {
    if (this.#session === null) throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', 'expected a live WanSession, got one already freed');
    return this.#session;
  }

  #begun(): { batch: number; tokens: number; out: number[] } {
    if (this.#shape === null) throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', 'expected begin() before this call, got none');
    return this.#shape;
  }

  /** Starts a forward: x [B, in, F, H, W], t [B] (sigma·1000), context [B, Lc, textDim], all F32. */
  begin(x: Tensor, t: Tensor, context: Tensor): void {
    const s = this.#live();
    callNative(() => s.begin(x.toNative(), t.toNative(), context.toNative()));
    const c = this.config;
    const [b, , f, h, w] = x.shape as [number, number, number, number, number];
    this.#shape = { batch: b, tokens: (f / c.patch[0]) * (h / c.patch[1]) * (w / c.patch[2]), out: [b, c.outChannels, f, h, w] };
  }

  runBlock(block: number, options: BlockRunOptions = {}): BlockStats {
    const s = this.#live();
    const precision = options.precision ?? 'full';
    if (!(precision in PRECISION_CODE)) throw invalidArgument('precision', `one of ${PRECISIONS.join(', ')}`, precision);
    const guard = options.guardPrecision ?? 'full';
    if (guard !== 'full' && guard !== 'bf16') throw invalidArgument('guardPrecision', 'full or bf16', guard);
    const r = callNative(() =>
      s.runBlock(block, {
        precision: PRECISION_CODE[precision],
        outlierGuard: options.outlierGuard ?? 0,
        guardPrecision: PRECISION_CODE[guard],
        sparseTopk: options.sparseTopk ?? 0,
        sparseTopp: options.sparseTopp ?? 0,
        attention: options.lowBitAttention ? 1 : 0,
      }),
    );
    return {
      inputL1: r.inputL1,
      deltaL1: r.deltaL1,
      gamma: r.inputL1 > 0 ? r.deltaL1 / r.inputL1 : 0,
      deltaChange: r.deltaChange < 0 ? null : r.deltaChange,
      maxOutlier: r.maxOutlier,
      fullLinears: r.fullLinears,
      lowbitLinears: r.lowbitLinears,
      attentionSparsity: r.attentionSparsity,
    };
  }

  /** Re-adds block's cached delta; refused when the block never ran. */
  skipBlock(block: number): void {
    const s = this.#live();
    callNative(() => s.skipBlock(block));
  }

  /** The head over the residual stream: the velocity, F32 [B, out, F, H, W]. */
  finish(): Tensor<'F32'> {
    const s = this.#live();
    const out = Tensor.zeros('F32', this.#begun().out);
    callNative(() => s.finish(out.toNative()));
    return out;
  }

  /** A copy of the residual stream, F32 [B, L, dim]. */
  readTokens(): Tensor<'F32'> {
    const s = this.#live();
    const { batch, tokens } = this.#begun();
    const out = Tensor.zeros('F32', [batch, tokens, this.config.dim]);
    callNative(() => s.readTokens(out.toNative()));
    return out;
  }

  writeTokens(tokens: Tensor): void {
    const s = this.#live();
    this.#begun();
    callNative(() => s.writeTokens(tokens.toNative()));
  }

  /** e0, the blocks' modulation input of this forward: F32 [B, 6, dim]. */
  timeEmbedding(): Tensor<'F32'> {
    const s = this.#live();
    const out = Tensor.zeros('F32', [this.#begun().batch, 6, this.config.dim]);
    callNative(() => s.timeEmbedding(out.toNative()));
    return out;
  }

  /** Forgets every cached delta (before a new video). */
  reset(): void {
    const s = this.#live();
    callNative(() => s.reset());
  }

  free(): void {
    if (this.#session !== null) {
      this.#session.free();
      this.#session = null;
    }
  }
}
