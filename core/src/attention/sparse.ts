/**
 * SpargeAttention2 (arXiv 2602.13515): a block mask predicted from mean-pooled Q and K blocks —
 * Top-k ∪ Top-p per query-block row, a self-similarity guard, an optional attention sink — then
 * block-sparse attention on it (slip_attn_sparse_predict, slip_attn_sparse). Options left out
 * keep slip_sparse_params_init's defaults (block 128×64, Top-k 0.5, Top-p off, θ -0.1).
 */
import { z } from 'zod';

import { SlipstreamError } from '../errors/index.js';
import type { NativeSparseParams } from '../native/binding.js';
import { callNative, callNativeAsync } from '../native/call.js';
import { native } from '../native/index.js';
import { Tensor } from '../tensor/index.js';
import { parseAttnOptions, prepareAttn, requireF32, type AttnOptions, type AttnResult } from './common.js';
import { parseArgument } from '../schema/index.js';

const fraction = z.number().min(0).max(1);

export const sparseOptionsSchema = z.strictObject({
  /** Query tokens per block (default 128, SpargeAttn's b_q). */
  blockQ: z.number().int().positive().optional(),
  /** Key tokens per block (default 64). */
  blockK: z.number().int().positive().optional(),
  /** Fraction of a row's allowed key blocks kept by Top-k (floor, at least 1); 0 turns it off. */
  topk: fraction.optional(),
  /** Cumulative pooled mass kept by Top-p; 0 turns it off. Both on: a block is kept if either keeps it. */
  topp: fraction.optional(),
  /** Blocks whose tokens' mean pairwise cosine is <= this are not trusted and kept. */
  simThreshold: z.number().min(-1).max(1).optional(),
  /** Always keep key block 0. */
  attentionSink: z.boolean().optional(),
  /** Subtract K's per-head mean before pooling. */
  smoothK: z.boolean().optional(),
});
export type SparseOptions = z.input<typeof sparseOptionsSchema>;

export interface SparseResult extends AttnResult {
  /** U8 [B, Hq, ceil(Nq/blockQ), ceil(Nk/blockK)], 1 = computed. */
  blockMask: Tensor<'U8'>;
  /** 1 - kept / causally allowed (query block, key block) pairs. */
  sparsity: number;
}

function parseSparse(sparse: unknown): NativeSparseParams {
  return parseArgument(sparseOptionsSchema, sparse ?? {}, 'sparse');
}

/** [B, Hq, nQb, nKb] from q and k's shapes; [0] when a rank is wrong (the native call names it). */
function maskShape(q: Tensor, k: Tensor, layout: 'HND' | 'NHD', p: NativeSparseParams): number[] {
  if (q.rank !== 4 || k.rank !== 4) return [0];
  const d = native().sparseDefaults();
  const bq = p.blockQ ?? d.blockQ, bk = p.blockK ?? d.blockK;
  const [b, hq, nq] = layout === 'HND' ? [q.shape[0]!, q.shape[1]!, q.shape[2]!] : [q.shape[0]!, q.shape[2]!, q.shape[1]!];
  const nk = layout === 'HND' ? k.shape[2]! : k.shape[1]!;
  return [b, hq, Math.ceil(nq / bq), Math.ceil(nk / bk)];
}

/** The predicted block mask alone (no attention). Reads layout, causal and scale of options. */
export function attnSparsePredict(q: Tensor, k: Tensor, options: AttnOptions = {}, sparse: SparseOptions = {}) {
  const o = parseAttnOptions(options);
  const p = parseSparse(sparse);
  const tq = requireF32(q, 'q'), tk = requireF32(k, 'k');
  const blockMask = Tensor.zeros('U8', maskShape(tq, tk, o.layout ?? 'HND', p));
  const nativeOptions = {
    ...(o.layout !== undefined ? { layout: o.layout === 'HND' ? 0 : 1 } : {}),
    ...(o.causal !== undefined ? { causal: o.causal } : {}),
    ...(o.scale !== undefined ? { scale: o.scale } : {}),
  };
  const sparsity = callNative(() => native().attnSparsePredict(tq.toNative(), tk.toNative(), blockMask.toNative(), nativeOptions, p));
  return { blockMask, sparsity };
}

function prepare(q: Tensor, k: Tensor, v: Tensor, options: AttnOptions, sparse: SparseOptions) {
  if (parseAttnOptions(options).cuSeqlens) {
    throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', 'expected no options.cuSeqlens for attnSparse (varlen is not supported), got one');
  }
  const c = prepareAttn(q, k, v, options);
  const p = parseSparse(sparse);
  const blockMask = Tensor.zeros('U8', maskShape(q, k, parseAttnOptions(options).layout ?? 'HND', p));
  return { c, p, blockMask };
}

/** Predicts the mask, then block-sparse attention on it; runs on the libuv pool. */
export async function attnSparse(q: Tensor, k: Tensor, v: Tensor, options: AttnOptions = {}, sparse: SparseOptions = {}): Promise<SparseResult> {
  const { c, p, blockMask } = prepare(q, k, v, options, sparse);
  const t = c.tensors;
  const sparsity = await callNativeAsync(() => native().attnSparse(t.q, t.k, t.v, t.out, blockMask.toNative(), c.options, p));
  return { ...c.result, blockMask, sparsity };
}

export function attnSparseSync(q: Tensor, k: Tensor, v: Tensor, options: AttnOptions = {}, sparse: SparseOptions = {}): SparseResult {
  const { c, p, blockMask } = prepare(q, k, v, options, sparse);
  const t = c.tensors;
  const sparsity = callNative(() => native().attnSparseSync(t.q, t.k, t.v, t.out, blockMask.toNative(), c.options, p));
  return { ...c.result, blockMask, sparsity };
}
