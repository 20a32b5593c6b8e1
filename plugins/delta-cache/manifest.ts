import { z } from 'zod';

import { definePlugin } from '../manifest.js';

export const deltaCacheManifest = definePlugin({
  id: 'delta-cache',
  title: 'Temporal Delta Cache',
  description:
    'Skips a transformer block when its residual delta (output - input) is predicted to be stable, re-adding the cached delta; ' +
    'an accumulated error bound forces a recompute. Purified Delta Refresh keeps quantization noise out of the cache.',
  source: '6Bit-Diffusion (TDC, PDR)',
  runtimes: ['embedded', 'comfyui'],
  params: z.strictObject({
    threshold: z
      .number()
      .positive()
      .default(0.06)
      .describe('τ: the accumulated predicted relative error of the residual stream that forces a recompute of a block'),
    maxSkips: z.int().min(1).max(16).default(2).describe('N_max: most consecutive steps one block may be skipped'),
    warmupSteps: z.int().min(2).default(4).describe('first steps always computed (two are needed to see how a delta moves)'),
    finalSteps: z.int().min(0).default(1).describe('last steps always computed'),
    purify: z.boolean().default(true).describe('Purified Delta Refresh: refreshing recomputes run outlier layers at high precision, and the first recompute after a skip runs in INT8'),
    outlierRatio: z.number().positive().default(25).describe('PDR: a linear whose input has max|X|/mean|X| above this runs at high precision on a refresh'),
    purifyPrecision: z
      .enum(['bf16', 'full'])
      .default('bf16')
      .describe("PDR's high precision: 'bf16' (BF16 activations against the exact NVFP4 weight, the 16-bit precision the paper uses; AMX tiles where the CPU has them) or 'full' (FP32)"),
  }),
});
