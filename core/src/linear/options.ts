/**
 * Linear options, validated with zod. Numbers mirror slipstream.h (slip_act_quant,
 * slip_quant_format); defaults are not repeated here: an option left out keeps
 * slip_linear_params_init's default (activations stay FP32).
 */
import { z } from 'zod';

import type { NativeLinearParams } from '../native/binding.js';
import { QUANT_FORMATS } from '../quant/index.js';
import { parseArgument } from '../schema/index.js';

/** Weight formats a plan takes: the quantized ones, plus 'F32' (the unquantized baseline). */
export const WEIGHT_FORMATS = { ...QUANT_FORMATS, F32: 7 } as const;
export type WeightFormat = keyof typeof WEIGHT_FORMATS;

/**
 * Weight elements per item of the codes container along K: codes are [N, K / per-item].
 * INT4 packs eight 4-bit values into an int32 word (compressed-tensors), the FP4 formats two per byte.
 */
export const CODES_PER_ITEM: Readonly<Record<WeightFormat, number>> = {
  INT8: 1, INT4: 8, FP8_E4M3: 1, FP8_E5M2: 1, NVFP4: 2, NVFP4_TJ2: 2, MXFP4: 2, F32: 1,
};

const ACT_QUANT = { none: 0, dynamic: 1, int8: 2 } as const;

export const linearOptionsSchema = z.strictObject({
  /**
   * What happens to the activations: 'none' keeps them FP32 (W4A16, W8A16, NVFP4A16);
   * 'dynamic' quantizes them per call with the weight format's own scheme (INT8: per-token
   * W8A8; FP8: per-token FP8; NVFP4: W4A4). Other formats have no activation scheme.
   * 'int8' quantizes them per token to INT8 (scale amax/127) against a weight whose codes are
   * exact small integers: INT8 (the same as 'dynamic'), and NVFP4 (W4A8: 2 x E2M1 is an integer,
   * so each 16-column group is an exact integer dot product). NVFP4 W4A8 and W4A4 run as integer
   * products on AVX-512 VNNI CPUs; other formats refuse 'int8'.
   */
  activations: z.enum(['none', 'dynamic', 'int8']).optional(),
  /** NVFP4 W4A4 only: a static activation global scale; left out, 448*6/amax(x) per call. */
  actGlobalScale: z.number().positive().finite().optional(),
});
export type LinearOptions = z.input<typeof linearOptionsSchema>;

const formatSchema = z.enum(Object.keys(WEIGHT_FORMATS) as [WeightFormat, ...WeightFormat[]]);

export function parseWeightFormat(format: unknown, name: string): WeightFormat {
  return parseArgument(formatSchema, format, name);
}

export function toNativeLinearParams(options: unknown): NativeLinearParams {
  const o = parseArgument(linearOptionsSchema, options ?? {}, 'options');
  const p: NativeLinearParams = {};
  if (o.activations !== undefined) p.actQuant = ACT_QUANT[o.activations];
  if (o.actGlobalScale !== undefined) p.actGlobalScale = o.actGlobalScale;
  return p;
}

