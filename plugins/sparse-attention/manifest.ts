import { z } from 'zod';

import { definePlugin } from '../manifest.js';

export const sparseAttentionManifest = definePlugin({
  id: 'sparse-attention',
  title: 'Sparse attention (SpargeAttention2)',
  description:
    'Self-attention runs block-sparse on a mask predicted per call from pooled q and k: Top-k keeps a fraction of key blocks per ' +
    'query block, Top-p a cumulative mass, both their union; blocks whose tokens are not alike stay dense.',
  source: 'SpargeAttention2',
  runtimes: ['embedded', 'comfyui'],
  params: z.strictObject({
    topk: z.number().min(0).max(1).default(0.5).describe('fraction of key blocks kept per query block (0 = rule off)'),
    topp: z.number().min(0).max(1).default(0).describe('cumulative pooled attention mass kept (0 = rule off)'),
    startPercent: z.number().min(0).max(1).default(0.2).describe('sampling progress before which attention stays dense'),
    endPercent: z.number().min(0).max(1).default(1).describe('sampling progress after which attention is dense again'),
    denseBlocks: z.int().min(0).default(1).describe('the first transformer blocks keep dense attention'),
  }).refine((p) => p.topk > 0 || p.topp > 0, { message: 'expected topk or topp above 0 (both 0 would be dense attention)', path: ['topk'] }),
});
