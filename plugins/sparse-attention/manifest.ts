import { z } from 'zod';

import { definePlugin } from '../manifest.js';

export const sparseAttentionManifest = definePlugin({
  id: 'sparse-attention',
  title: 'Low-bit and sparse attention (SageAttention, SpargeAttention2)',
  description:
    'Self-attention runs block-sparse on a mask predicted per call from pooled q and k: Top-k keeps a fraction of key blocks per ' +
    'query block, Top-p a cumulative mass, both their union; blocks whose tokens are not alike stay dense. With precision int8, ' +
    'q·k runs in INT8 per token after smooth-K and p·v in BF16 (SageAttention\'s recipe on the CPU\'s AMX tiles), in every block and step.',
  source: 'SageAttention2, SpargeAttention2',
  runtimes: ['embedded', 'comfyui'],
  params: z.strictObject({
    topk: z.number().min(0).max(1).default(0.5).describe('fraction of key blocks kept per query block (0 = rule off)'),
    topp: z.number().min(0).max(1).default(0).describe('cumulative pooled attention mass kept (0 = rule off)'),
    startPercent: z.number().min(0).max(1).default(0.2).describe('sampling progress before which attention stays dense'),
    endPercent: z.number().min(0).max(1).default(1).describe('sampling progress after which attention is dense again'),
    denseBlocks: z.int().min(0).default(1).describe('the first transformer blocks keep dense attention'),
    precision: z
      .enum(['int8', 'fp32'])
      .default('int8')
      .describe("int8: INT8 q·k (per token, smooth-K) and BF16 p·v with FP32 softmax; fp32: full precision"),
  }).refine((p) => p.topk > 0 || p.topp > 0, { message: 'expected topk or topp above 0 (both 0 would be dense attention)', path: ['topk'] }),
});
