import { z } from 'zod';

import { definePlugin } from '../manifest.js';

export const mixedPrecisionManifest = definePlugin({
  id: 'mixed-precision',
  title: 'Dynamic mixed precision (DMPQ)',
  description:
    'Weights stored once in NVFP4 behind a blocked Hadamard rotation; per block and step, activations run NVFP4 when the block was ' +
    'stable at the previous step (Γ below a threshold) and INT8 when it was volatile.',
  source: '6Bit-Diffusion (DMPQ)',
  runtimes: ['embedded', 'comfyui'],
  params: z.strictObject({
    route: z
      .enum(['dmpq', 'int8', 'nvfp4', 'bf16', 'full'])
      .default('dmpq')
      .describe('dmpq: by Γ; int8 / nvfp4 / bf16 / full: every block at that activation precision (ablations)'),
    gammaThreshold: z
      .number()
      .nonnegative()
      .optional()
      .describe('Γ above which a block runs INT8; default: the calibration profile\'s'),
    hadamardBlock: z.literal([0, 16, 32, 64, 128, 256]).default(128)
      .describe('rotation block on the linears\' input axis (0 = none); a checkpoint brings its own'),
    checkpoint: z
      .string()
      .min(1)
      .optional()
      .describe('NVFP4 block linears quantized offline (GPTQ), relative to the model folder, e.g. "nvfp4/model.safetensors"; default: round-to-nearest at load'),
  }),
});
