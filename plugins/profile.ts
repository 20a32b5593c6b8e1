/**
 * A calibration profile (written by `slipstream calibrate`, read by workflows and the ComfyUI
 * nodes): what the diffusion plugins fit on a model's own sampling runs.
 *   dmpq      the linear model E_rel ≈ αΓ + β of a block's NVFP4 error against its previous-step Γ,
 *             and the Γ threshold it implies for a target error
 *   teacache  the polynomial that rescales the timestep-embedding change into output change
 *   magcache  the per-step magnitude ratio of the block stack's residual
 */
import { z } from 'zod';

import { defineSchema, type SchemaType } from '../core/src/schema/index.js';

const finite = z.number().finite();

export const profileSchema = defineSchema(
  'profile',
  z.strictObject({
    format: z.literal('slipstream-profile/1'),
    model: z.string().min(1).describe('what it was calibrated on (a model folder name)'),
    sampler: z.strictObject({
      solver: z.string().min(1),
      steps: z.int().positive(),
      shift: z.number().positive(),
      cfg: finite,
    }),
    prompts: z.array(z.string()).min(1).describe('the prompts of the calibration runs'),
    dmpq: z.strictObject({
      alpha: finite,
      beta: finite,
      r2: finite.describe('coefficient of determination of the fit'),
      targetError: z.number().positive().describe('the relative NVFP4 error a block may have'),
      gammaThreshold: z.number().nonnegative().describe('Γ above which a block runs INT8 instead of NVFP4: (targetError − β) / α'),
      samples: z.int().nonnegative().describe('(Γ, E_rel) pairs the fit used'),
    }),
    // Optional: ComfyUI's SlipstreamMixedPrecision calibrates DMPQ only.
    teacache: z.strictObject({
      coefficients: z.array(finite).length(5).describe('c4..c0 of f(d) = c4 d⁴ + … + c0'),
    }).optional(),
    magcache: z.strictObject({
      ratios: z.array(z.number().positive()).min(1).describe('per step t ≥ 1: mean over tokens of ‖r_t‖ / ‖r_{t−1}‖'),
    }).optional(),
  }),
  { description: 'A calibration profile written by `slipstream calibrate` (DMPQ fit, TeaCache polynomial, MagCache ratios).' },
);

export type Profile = SchemaType<typeof profileSchema>;
