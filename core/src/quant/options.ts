/**
 * Quantization formats and options, validated with zod. Numbers mirror the enums of
 * native/include/slipstream.h; defaults are NOT repeated here: an option left out keeps
 * slip_quant_params_init's default for the format, the single source of truth.
 */
import { z } from 'zod';

import type { NativeQuantParams } from '../native/binding.js';
import { parseArgument } from '../schema/index.js';

/** slip_quant_format, by name. */
export const QUANT_FORMATS = { INT8: 0, INT4: 1, FP8_E4M3: 2, FP8_E5M2: 3, NVFP4: 4, NVFP4_TJ2: 5, MXFP4: 6 } as const;
export type QuantFormat = keyof typeof QUANT_FORMATS;

/** slip_element_format, by name. */
export const ELEMENT_FORMATS = { E4M3: 0, E5M2: 1, E2M1: 2, E8M0: 3 } as const;
export type ElementFormat = keyof typeof ELEMENT_FORMATS;

const GRANULARITIES = { tensor: 0, row: 1, group: 2, block: 3 } as const;
const ROUNDINGS = { nearest: 0, stochastic: 1 } as const;

const positiveInt = z.number().int().positive();

export const quantOptionsSchema = z.strictObject({
  /** INT8/FP8 only: one scale per tensor, row, group of columns or block (INT4/FP4 formats are group-wise). */
  granularity: z.enum(['tensor', 'row', 'group', 'block']).optional(),
  /** Columns per scale for granularity 'group' (INT4: 128; fixed 16 for NVFP4, 32 for MXFP4). */
  groupSize: positiveInt.optional(),
  /** Tile [rows, cols] for granularity 'block'. */
  block: z.tuple([positiveInt, positiveInt]).optional(),
  /** Element rounding: 'nearest' (ties to even) or 'stochastic' (unbiased, seeded). */
  rounding: z.enum(['nearest', 'stochastic']).optional(),
  /** Seed of stochastic rounding; codes depend only on (seed, element index). */
  seed: z.union([z.number().int().nonnegative(), z.bigint().nonnegative()]).optional(),
  /** Quantize NaN/Inf instead of refusing them (they are left out of amax). */
  allowNonFinite: z.boolean().optional(),
  /**
   * INT8/INT4 only: scale = amax / (qmax + 0.5) with codes in [-(qmax+1), qmax] — the convention
   * compressed-tensors uses for weights — instead of amax / qmax and [-qmax, qmax].
   */
  fullIntRange: z.boolean().optional(),
  /** NVFP4 only, nearest rounding: each block's E4M3 scale is the least-squared-error one among
   *  the amax/6 scale and the 6 below it (offline weight quantization). */
  mseScales: z.boolean().optional(),
  /** NVFP4 only: a fixed global scale (e.g. shared by fused q/k/v) instead of 448*6/amax. */
  globalScale: z.number().positive().finite().optional(),
});
export type QuantOptions = z.input<typeof quantOptionsSchema>;

const formatSchema = z.enum(Object.keys(QUANT_FORMATS) as [QuantFormat, ...QuantFormat[]]);
const elementSchema = z.enum(Object.keys(ELEMENT_FORMATS) as [ElementFormat, ...ElementFormat[]]);

export function parseFormat(format: unknown): QuantFormat {
  return parseArgument(formatSchema, format, 'format');
}

export function parseElementFormat(format: unknown): ElementFormat {
  return parseArgument(elementSchema, format, 'format');
}

/** Validated options as the binding's params object. */
export function toNativeParams(format: QuantFormat, options: unknown = {}): NativeQuantParams {
  const o = parseArgument(quantOptionsSchema, options ?? {}, 'options');
  const p: NativeQuantParams = { format: QUANT_FORMATS[format] };
  if (o.granularity !== undefined) p.granularity = GRANULARITIES[o.granularity];
  if (o.groupSize !== undefined) p.groupSize = o.groupSize;
  if (o.block !== undefined) [p.blockRows, p.blockCols] = o.block;
  if (o.rounding !== undefined) p.rounding = ROUNDINGS[o.rounding];
  if (o.seed !== undefined) p.seed = o.seed;
  // SLIP_QUANT_ALLOW_NONFINITE = 1, SLIP_QUANT_FULL_INT_RANGE = 2, SLIP_QUANT_MSE_SCALES = 4
  const flags = (o.allowNonFinite ? 1 : 0) | (o.fullIntRange ? 2 : 0) | (o.mseScales ? 4 : 0);
  if (flags) p.flags = flags;
  if (o.globalScale !== undefined) p.globalScale = o.globalScale;
  return p;
}

export function roundingId(rounding: unknown): number {
  return ROUNDINGS[parseArgument(z.enum(['nearest', 'stochastic']), rounding ?? 'nearest', 'rounding')];
}
