/**
 * SLA2 sparse-linear attention (arXiv 2602.12675), forward and backward: a router sends each
 * (query block, key block) pair to exact softmax attention (critical), linear attention
 * (marginal) or nowhere (negligible); O = α·Oˢ + (1 − α)·(Oˡ·Wpᵀ + bp) per head. The route is an
 * input of forward and backward (a hard Top-k: no gradient reaches the router). Options left out
 * keep slip_sla_params_init's defaults (block 128×64, 5% critical, none negligible, softmax φ).
 */
import { z } from 'zod';

import { SlipstreamError } from '../errors/index.js';
import type { NativeAttnOptions, NativeSlaParams } from '../native/binding.js';
import { callNative, callNativeAsync } from '../native/call.js';
import { native } from '../native/index.js';
import { Tensor } from '../tensor/index.js';
import { requireF32 } from './common.js';
import { parseArgument } from '../schema/index.js';

const FEATURE_MAPS = { softmax: 0, elu: 1, relu: 2 } as const;

export const slaOptionsSchema = z.strictObject({
  /** Query tokens per block (default 128, SLA2's b_q). */
  blockQ: z.number().int().positive().optional(),
  /** Key tokens per block (default 64). */
  blockK: z.number().int().positive().optional(),
  /** Fraction of key blocks per row routed to exact softmax attention (floor, at least 1). */
  critical: z.number().gt(0).max(1).optional(),
  /** Fraction of key blocks per row skipped (the lowest router scores), at most 1 - critical. */
  negligible: z.number().min(0).max(1).optional(),
  /** φ of the linear branch, per token over D: softmax (SLA's default), elu (elu + 1) or relu. */
  featureMap: z.enum(['softmax', 'elu', 'relu']).optional(),
  /** Subtract K's per-head mean before the router pools it. */
  smoothK: z.boolean().optional(),
});
export type SlaOptions = z.input<typeof slaOptionsSchema>;

/** layout and scale as in attention; causal is accepted so that the native call refuses it. */
export const slaAttnOptionsSchema = z.strictObject({
  layout: z.enum(['HND', 'NHD']).optional(),
  causal: z.boolean().optional(),
  scale: z.number().positive().finite().optional(),
});
export type SlaAttnOptions = z.input<typeof slaAttnOptionsSchema>;

/** Learned parameters: α F32 [Hq]; Wp F32 [D, D] (out, in; SLA zero-initialises it); bp F32 [D]. */
export interface SlaWeights {
  alpha: Tensor;
  projW: Tensor;
  projB?: Tensor;
}

export interface SlaGrads {
  dq: Tensor<'F32'>;
  dk: Tensor<'F32'>;
  dv: Tensor<'F32'>;
  dalpha: Tensor<'F32'>;
  dprojW: Tensor<'F32'>;
  /** Present when weights.projB was given. */
  dprojB?: Tensor<'F32'>;
}

function parse<T>(schema: z.ZodType<T>, value: unknown, name: string): T {
  return parseArgument(schema, value ?? {}, name);
}

function toNative(options: unknown, sla: unknown) {
  const o = parse(slaAttnOptionsSchema, options, 'options');
  const s = parse(slaOptionsSchema, sla, 'sla');
  const nativeOptions: NativeAttnOptions = {
    ...(o.layout !== undefined ? { layout: o.layout === 'HND' ? 0 : 1 } : {}),
    ...(o.causal !== undefined ? { causal: o.causal } : {}),
    ...(o.scale !== undefined ? { scale: o.scale } : {}),
  };
  const { featureMap, ...rest } = s;
  const params: NativeSlaParams = { ...rest, ...(featureMap !== undefined ? { featureMap: FEATURE_MAPS[featureMap] } : {}) };
  return { layout: o.layout ?? 'HND', nativeOptions, params };
}

/** U8 [B, Hq, nQb, nKb]; [0] when a rank is wrong (the native call names the problem). */
function routeShape(q: Tensor, k: Tensor, layout: 'HND' | 'NHD', p: NativeSlaParams): number[] {
  if (q.rank !== 4 || k.rank !== 4) return [0];
  const d = native().slaDefaults();
  const [b, hq, nq] = layout === 'HND' ? [q.shape[0]!, q.shape[1]!, q.shape[2]!] : [q.shape[0]!, q.shape[2]!, q.shape[1]!];
  const nk = layout === 'HND' ? k.shape[2]! : k.shape[1]!;
  return [b, hq, Math.ceil(nq / (p.blockQ ?? d.blockQ)), Math.ceil(nk / (p.blockK ?? d.blockK))];
}

/**
 * The router: route U8 [B, Hq, nQb, nKb] of 0 negligible, 1 marginal, 2 critical, and the
 * fraction of pairs not critical. router.wq / router.wk: F32 [D, D] projections of the pooled
 * blocks (left out: identity, the training-free router).
 */
export function slaRoute(q: Tensor, k: Tensor, options: SlaAttnOptions = {}, sla: SlaOptions = {},
  router: { wq?: Tensor; wk?: Tensor } = {}): { route: Tensor<'U8'>; sparsity: number } {
  const { layout, nativeOptions, params } = toNative(options, sla);
  const tq = requireF32(q, 'q'), tk = requireF32(k, 'k');
  const wq = router.wq ? requireF32(router.wq, 'router.wq').toNative() : null;
  const wk = router.wk ? requireF32(router.wk, 'router.wk').toNative() : null;
  const route = Tensor.zeros('U8', routeShape(tq, tk, layout, params));
  const sparsity = callNative(() => native().slaRoute(tq.toNative(), tk.toNative(), wq, wk, route.toNative(), nativeOptions, params));
  return { route, sparsity };
}

function prepare(q: Tensor, k: Tensor, v: Tensor, route: Tensor, w: SlaWeights, options: unknown, sla: unknown) {
  const { nativeOptions, params } = toNative(options, sla);
  const tq = requireF32(q, 'q'), tk = requireF32(k, 'k'), tv = requireF32(v, 'v');
  if (!(route instanceof Tensor) || route.dtype !== 'U8') {
    throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected a U8 Tensor for route, got ${route instanceof Tensor ? `a ${route.dtype} Tensor` : String(route)}`);
  }
  if (typeof w !== 'object' || w === null) throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected a weights object { alpha, projW, projB? } for weights, got ${String(w)}`);
  const alpha = requireF32(w.alpha, 'weights.alpha'), projW = requireF32(w.projW, 'weights.projW');
  const projB = w.projB ? requireF32(w.projB, 'weights.projB') : undefined;
  const args = [tq.toNative(), tk.toNative(), tv.toNative(), route.toNative(), alpha.toNative(), projW.toNative(), projB?.toNative() ?? null] as const;
  return { tq, tk, tv, alpha, projW, projB, args, nativeOptions, params };
}

export async function slaForward(q: Tensor, k: Tensor, v: Tensor, route: Tensor, weights: SlaWeights,
  options: SlaAttnOptions = {}, sla: SlaOptions = {}): Promise<Tensor<'F32'>> {
  const c = prepare(q, k, v, route, weights, options, sla);
  const out = Tensor.zeros('F32', c.tq.shape);
  await callNativeAsync(() => native().slaForward(...c.args, out.toNative(), c.nativeOptions, c.params));
  return out;
}

export function slaForwardSync(q: Tensor, k: Tensor, v: Tensor, route: Tensor, weights: SlaWeights,
  options: SlaAttnOptions = {}, sla: SlaOptions = {}): Tensor<'F32'> {
  const c = prepare(q, k, v, route, weights, options, sla);
  const out = Tensor.zeros('F32', c.tq.shape);
  callNative(() => native().slaForwardSync(...c.args, out.toNative(), c.nativeOptions, c.params));
  return out;
}

function grads(c: ReturnType<typeof prepare>): SlaGrads {
  const g: SlaGrads = {
    dq: Tensor.zeros('F32', c.tq.shape), dk: Tensor.zeros('F32', c.tk.shape), dv: Tensor.zeros('F32', c.tv.shape),
    dalpha: Tensor.zeros('F32', c.alpha.shape), dprojW: Tensor.zeros('F32', c.projW.shape),
  };
  if (c.projB) g.dprojB = Tensor.zeros('F32', c.projB.shape);
  return g;
}

/** Gradients of sum(dout ⊙ O) for the same inputs and route (the forward is recomputed). */
export async function slaBackward(q: Tensor, k: Tensor, v: Tensor, route: Tensor, weights: SlaWeights, dout: Tensor,
  options: SlaAttnOptions = {}, sla: SlaOptions = {}): Promise<SlaGrads> {
  const c = prepare(q, k, v, route, weights, options, sla);
  const go = requireF32(dout, 'dout');
  const g = grads(c);
  await callNativeAsync(() => native().slaBackward(...c.args, go.toNative(), g.dq.toNative(), g.dk.toNative(), g.dv.toNative(),
    g.dalpha.toNative(), g.dprojW.toNative(), g.dprojB?.toNative() ?? null, c.nativeOptions, c.params));
  return g;
}

export function slaBackwardSync(q: Tensor, k: Tensor, v: Tensor, route: Tensor, weights: SlaWeights, dout: Tensor,
  options: SlaAttnOptions = {}, sla: SlaOptions = {}): SlaGrads {
  const c = prepare(q, k, v, route, weights, options, sla);
  const go = requireF32(dout, 'dout');
  const g = grads(c);
  callNative(() => native().slaBackwardSync(...c.args, go.toNative(), g.dq.toNative(), g.dk.toNative(), g.dv.toNative(),
    g.dalpha.toNative(), g.dprojW.toNative(), g.dprojB?.toNative() ?? null, c.nativeOptions, c.params));
  return g;
}
