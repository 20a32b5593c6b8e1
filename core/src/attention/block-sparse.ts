/**
 * Block-sparse FP32 attention (slip_attn_block_sparse): the dense numerics on the (query block,
 * key block) pairs a U8 block mask [B, Hq, ceil(Nq/blockQ), ceil(Nk/blockK)] keeps; dropped pairs
 * are skipped, not masked. Causality applies per token; not with varlen.
 */
import { z } from 'zod';

import { SlipstreamError, invalidArgument } from '../errors/index.js';
import { callNative, callNativeAsync } from '../native/call.js';
import { native } from '../native/index.js';
import { Tensor } from '../tensor/index.js';
import { prepareAttn, type AttnOptions, type AttnResult } from './common.js';

export interface BlockSparseResult extends AttnResult {
  /** Kept (query block, key block) pairs / pairs causality allows; sparsity = 1 - density. */
  density: number;
}

const blockSchema = z.number().int().positive();

function prepare(q: Tensor, k: Tensor, v: Tensor, blockMask: unknown, blockQ: unknown, blockK: unknown, options: AttnOptions) {
  if (!(blockMask instanceof Tensor) || blockMask.dtype !== 'U8') {
    throw invalidArgument('blockMask', 'a U8 Tensor', blockMask instanceof Tensor ? `a ${blockMask.dtype} Tensor` : blockMask);
  }
  for (const [name, value] of [['blockQ', blockQ], ['blockK', blockK]] as const) {
    if (!blockSchema.safeParse(value).success) throw invalidArgument(name, 'a positive integer', value);
  }
  if (options.cuSeqlens) {
    throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', 'expected no options.cuSeqlens for attnBlockSparse (varlen is not supported), got one');
  }
  return { c: prepareAttn(q, k, v, options), mask: blockMask.toNative(), bq: blockQ as number, bk: blockK as number };
}

export async function attnBlockSparse(
  q: Tensor, k: Tensor, v: Tensor, blockMask: Tensor, blockQ: number, blockK: number, options: AttnOptions = {},
): Promise<BlockSparseResult> {
  const { c, mask, bq, bk } = prepare(q, k, v, blockMask, blockQ, blockK, options);
  const t = c.tensors;
  const density = await callNativeAsync(() => native().attnBlockSparse(t.q, t.k, t.v, t.out, mask, bq, bk, c.options));
  return { ...c.result, density };
}

export function attnBlockSparseSync(
  q: Tensor, k: Tensor, v: Tensor, blockMask: Tensor, blockQ: number, blockK: number, options: AttnOptions = {},
): BlockSparseResult {
  const { c, mask, bq, bk } = prepare(q, k, v, blockMask, blockQ, blockK, options);
  const t = c.tensors;
  const density = callNative(() => native().attnBlockSparseSync(t.q, t.k, t.v, t.out, mask, bq, bk, c.options));
  return { ...c.result, density };
}
