/**
 * SageAttention2 / 2++ (arXiv 2411.10958, 2505.21136) and SageBwd (2603.02170) on the CPU, as
 * exact emulations of the GPU numerics (slip_attn_sage, slip_attn_sage_backward): INT8 Q and K
 * (amax/127 per row group), FP8 E4M3 P~ and per-channel V, an FP22 (sage2) or FP16 (sage2pp)
 * inner accumulator per 64-key tile flushed into FP32; the backward's QKᵀ, dV, dQ and dK in INT8
 * and dP in FP32. Options left out keep slip_sage_params_init's defaults (sage2, thread
 * granularity, smoothK on, smoothQ off, tiles 128 x 64 with 32-row warps).
 */
import { z } from 'zod';

import { SlipstreamError } from '../errors/index.js';
import type { NativeAttnOptions, NativeSageParams, NativeTensor } from '../native/binding.js';
import { callNative, callNativeAsync } from '../native/call.js';
import { native } from '../native/index.js';
import { Tensor } from '../tensor/index.js';
import { ATTN_LAYOUTS, attnOptionsSchema, lseShape, requireF32, type AttnResult } from './common.js';
import { parseArgument } from '../schema/index.js';

const VARIANTS = { sage2: 0, sage2pp: 1 } as const;
const GRANULARITIES = { block: 0, warp: 1, thread: 2 } as const;

/** The common attention options (no varlen) plus SageAttention's own. */
export const sageOptionsSchema = attnOptionsSchema.omit({ cuSeqlens: true }).extend({
  /** sage2: FP22 inner PV accumulator (Ada/Hopper FP8 MMA); sage2pp: FP16 inner accumulator,
   * V scaled to |codes| <= 2.25 so 448·2.25·64 keys stays below 65504. */
  variant: z.enum(['sage2', 'sage2pp']).optional(),
  /** Rows sharing one INT8 scale: a 128-row Q tile / 64-key K tile (block), a 32-row warp tile
   * (warp), or the rows of one thread's MMA fragment, 8 Q and 4 K scales per tile (thread). */
  granularity: z.enum(['block', 'warp', 'thread']).optional(),
  /** Subtract the token mean of K (exact; the LSE is corrected). */
  smoothK: z.boolean().optional(),
  /** Subtract each Q tile's mean and add its scores back in FP32 (forward only). */
  smoothQ: z.boolean().optional(),
  /** Q tile rows (a multiple of warpQ, <= 1024). */
  blockQ: z.number().int().positive().optional(),
  /** K/V tile rows (a multiple of 32, <= 1024; sage2pp <= 64). */
  blockK: z.number().int().positive().optional(),
  /** Warp tile rows (a multiple of 8). */
  warpQ: z.number().int().positive().optional(),
  /** false: the same tiling in plain FP32, the baseline quantization error is measured by. */
  quantize: z.boolean().optional(),
});
export type SageOptions = z.input<typeof sageOptionsSchema>;

export interface SageGrads {
  dq: Tensor<'F32'>;
  dk: Tensor<'F32'>;
  dv: Tensor<'F32'>;
}

function parse(options: unknown): z.output<typeof sageOptionsSchema> {
  return parseArgument(sageOptionsSchema, options ?? {}, 'options');
}

function toNative(options: unknown, lse: Tensor | undefined): NativeAttnOptions & NativeSageParams {
  const { layout, variant, granularity, mask, returnLse: _returnLse, ...rest } = parse(options);
  return {
    ...rest,
    ...(layout !== undefined ? { layout: ATTN_LAYOUTS[layout] } : {}),
    ...(variant !== undefined ? { variant: VARIANTS[variant] } : {}),
    ...(granularity !== undefined ? { granularity: GRANULARITIES[granularity] } : {}),
    mask: mask?.toNative() ?? null,
    lse: lse?.toNative() ?? null,
  };
}

function prepareForward(q: unknown, k: unknown, v: unknown, options: unknown) {
  const o = parse(options);
  if (o.mask && o.mask.dtype !== 'U8' && o.mask.dtype !== 'F32') {
    throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected a U8 or F32 Tensor for options.mask, got a ${o.mask.dtype} Tensor`);
  }
  const tq = requireF32(q, 'q');
  const t = { q: tq.toNative(), k: requireF32(k, 'k').toNative(), v: requireF32(v, 'v').toNative() };
  const result: AttnResult = { out: Tensor.zeros('F32', tq.shape) };
  if (o.returnLse) result.lse = Tensor.zeros('F32', lseShape(tq, o.layout ?? 'HND', false));
  return { t, result, native: toNative(options, result.lse) };
}

/** SageAttention2/2++ forward. Runs on the libuv pool; attnSageSync for small problems. */
export async function attnSage(q: Tensor, k: Tensor, v: Tensor, options: SageOptions = {}): Promise<AttnResult> {
  const { t, result, native: o } = prepareForward(q, k, v, options);
  await callNativeAsync(() => native().attnSage(t.q, t.k, t.v, result.out.toNative(), o));
  return result;
}

export function attnSageSync(q: Tensor, k: Tensor, v: Tensor, options: SageOptions = {}): AttnResult {
  const { t, result, native: o } = prepareForward(q, k, v, options);
  callNative(() => native().attnSageSync(t.q, t.k, t.v, result.out.toNative(), o));
  return result;
}

type BackwardArgs = [NativeTensor, NativeTensor, NativeTensor, NativeTensor, NativeTensor, NativeTensor,
  NativeTensor, NativeTensor, NativeTensor, NativeAttnOptions & NativeSageParams];

function prepareBackward(q: unknown, k: unknown, v: unknown, out: unknown, dOut: unknown, lse: unknown, options: unknown) {
  const tq = requireF32(q, 'q'), tk = requireF32(k, 'k'), tv = requireF32(v, 'v');
  const grads: SageGrads = { dq: Tensor.zeros('F32', tq.shape), dk: Tensor.zeros('F32', tk.shape), dv: Tensor.zeros('F32', tv.shape) };
  const args: BackwardArgs = [
    tq.toNative(), tk.toNative(), tv.toNative(), requireF32(out, 'out').toNative(), requireF32(dOut, 'dOut').toNative(),
    requireF32(lse, 'lse').toNative(), grads.dq.toNative(), grads.dk.toNative(), grads.dv.toNative(), toNative(options, undefined),
  ];
  return { args, grads };
}

/**
 * SageBwd: dQ, dK, dV of attention given the forward's out and lse (attnSage with returnLse).
 * dK and dV have k's and v's shapes (GQA: summed over each group's query heads).
 */
export async function attnSageBackward(q: Tensor, k: Tensor, v: Tensor, out: Tensor, dOut: Tensor, lse: Tensor,
  options: SageOptions = {}): Promise<SageGrads> {
  const { args, grads } = prepareBackward(q, k, v, out, dOut, lse, options);
  await callNativeAsync(() => native().attnSageBackward(...args));
  return grads;
}

export function attnSageBackwardSync(q: Tensor, k: Tensor, v: Tensor, out: Tensor, dOut: Tensor, lse: Tensor,
  options: SageOptions = {}): SageGrads {
  const { args, grads } = prepareBackward(q, k, v, out, dOut, lse, options);
  callNative(() => native().attnSageBackwardSync(...args));
  return grads;
}
