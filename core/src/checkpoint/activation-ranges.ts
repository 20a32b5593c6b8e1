/**
 * Calibrated activation ranges: {"<module>": max |input activation|}. NVFP4 W4A4 checkpoints
 * store input_global_scale = 448*6/amax per module, which a weight alone cannot give.
 */
import { z } from 'zod';

import { defineSchema } from '../schema/index.js';

export const activationRangesSchema = defineSchema(
  'activation-ranges',
  z.record(z.string().min(1), z.number().positive().finite().describe('max |activation| seen at the module input')),
  { description: 'Per-module activation ranges for NVFP4 W4A4 (slipstream quantize --input-amax).' },
);
