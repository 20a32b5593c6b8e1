/**
 * What every attention method shares on the TS side: the options schema (zod), tensor checks that
 * name the argument, and the output shapes. Numbers mirror slipstream.h ("attention"); defaults
 * are not repeated here: an option left out keeps slip_attn_params_init's value (HND, not causal,
 * scale 1/sqrt(D)).
 */
import { z } from 'zod';

import { invalidArgument } from '../errors/index.js';
import type { NativeAttnOptions, NativeTensor } from '../native/binding.js';
import { Tensor } from '../tensor/index.js';
import { parseArgument } from '../schema/index.js';

/** slip_attn_layout, by name. HND: [B, H, N, D]; NHD: [B, N, H, D]. */
export const ATTN_LAYOUTS = { HND: 0, NHD: 1 } as const;
export type AttnLayout = keyof typeof ATTN_LAYOUTS;

export const attnOptionsSchema = z.strictObject({
  /** HND [B, H, N, D] or NHD [B, N, H, D]; ignored with cuSeqlens (varlen is [tokens, H, D]). */
  layout: z.enum(['HND', 'NHD']).optional(),
  /** Query i attends key j iff j <= i + (Nk - Nq): aligned to the bottom right. */
  causal: z.boolean().optional(),
  /** Multiplies Q·Kᵀ; left out: 1/sqrt(D). */
  scale: z.number().positive().finite().optional(),
  /** U8 (1 attends) or F32 (added; -inf blocks), [B or 1, Hq or 1, Nq, Nk]. */
  mask: z.instanceof(Tensor).optional(),
  /** Varlen: I32 [B + 1] offsets of each sequence in q (cuSeqlens.q) and k/v (cuSeqlens.k). */
  cuSeqlens: z.strictObject({ q: z.instanceof(Tensor), k: z.instanceof(Tensor) }).optional(),
  /** Also return the natural-log softmax denominator: F32 [B, Hq, Nq] (varlen [Hq, total_q]). */
  returnLse: z.boolean().optional(),
});
export type AttnOptions = z.input<typeof attnOptionsSchema>;

export interface AttnResult {
  out: Tensor<'F32'>;
  /** Present when returnLse was set; -inf for rows that attend nothing. */
  lse?: Tensor<'F32'>;
}

export function parseAttnOptions(options: unknown): AttnOptions {
  return parseArgument(attnOptionsSchema, options ?? {}, 'options');
}

/** An F32 Tensor, or an error naming the argument. Shapes are checked natively. */
export function requireF32(x: unknown, name: string): Tensor<'F32'> {
  if (!(x instanceof Tensor) || x.dtype !== 'F32') {
    throw invalidArgument(name, 'an F32 Tensor', x instanceof Tensor ? `a ${x.dtype} Tensor` : x);
  }
  return x as Tensor<'F32'>;
}

/** The LSE shape for q: [B, Hq, Nq] by layout, or [Hq, total_q] for varlen; [0] for a q of the
 * wrong rank (the native call then names the real problem). */
export function lseShape(q: Tensor, layout: AttnLayout, varlen: boolean): number[] {
  const s = q.shape;
  if (varlen) return s.length === 3 ? [s[1]!, s[0]!] : [0];
  if (s.length !== 4) return [0];
  return layout === 'HND' ? [s[0]!, s[1]!, s[2]!] : [s[0]!, s[2]!, s[1]!];
}

/** The options object the native attention bindings take, plus the output tensors. */
export interface NativeAttnCall {
  options: NativeAttnOptions;
  result: AttnResult;
  tensors: { q: NativeTensor; k: NativeTensor; v: NativeTensor; out: NativeTensor };
}

export function prepareAttn(q: unknown, k: unknown, v: unknown, options: unknown): NativeAttnCall {
  const o = parseAttnOptions(options);
  const tq = requireF32(q, 'q');
  const tk = requireF32(k, 'k');
  const tv = requireF32(v, 'v');
  if (o.mask && o.mask.dtype !== 'U8' && o.mask.dtype !== 'F32') {
    throw invalidArgument('options.mask', 'a U8 or F32 Tensor', `a ${o.mask.dtype} Tensor`);
  }
  const layout = o.layout ?? 'HND';
  const result: AttnResult = { out: Tensor.zeros('F32', tq.shape) };
  if (o.returnLse) result.lse = Tensor.zeros('F32', lseShape(tq, layout, !!o.cuSeqlens));
  return {
    options: {
      ...(o.layout !== undefined ? { layout: ATTN_LAYOUTS[o.layout] } : {}),
      ...(o.causal !== undefined ? { causal: o.causal } : {}),
      ...(o.scale !== undefined ? { scale: o.scale } : {}),
      mask: o.mask?.toNative() ?? null,
      cuSeqlensQ: o.cuSeqlens?.q.toNative() ?? null,
      cuSeqlensK: o.cuSeqlens?.k.toNative() ?? null,
      lse: result.lse?.toNative() ?? null,
    },
    result,
    tensors: { q: tq.toNative(), k: tk.toNative(), v: tv.toNative(), out: result.out.toNative() },
  };
}
