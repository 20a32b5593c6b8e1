import { z } from 'zod';

import { definePlugin } from '../manifest.js';

/** The caches users already know, each by its own paper's rule, on the same runtime as ours so
 *  that bench/diffusion.md compares rules and nothing else. */
export const referenceCachesManifest = definePlugin({
  id: 'reference-caches',
  title: 'Reference caches (TeaCache, First Block Cache, MagCache, EasyCache)',
  description: 'Step-level caches that reuse the residual of the whole block stack (or the whole model output) when a cheap signal says the step is like the last one.',
  source: 'TeaCache (CVPR 2025), ParaAttention First Block Cache, MagCache (NeurIPS 2025), EasyCache',
  runtimes: ['embedded'],
  params: z.strictObject({
    method: z.enum(['teacache', 'first-block-cache', 'magcache', 'easycache']).describe('which rule'),
    threshold: z.number().positive().describe('teacache δ, first-block-cache residual threshold, magcache error δ, easycache τ'),
    warmupSteps: z.int().min(1).optional().describe('first steps always computed; default: the method\'s own (teacache 1, first-block-cache 1, magcache 20% of steps, easycache 5)'),
    maxSkips: z.int().min(1).default(2).describe('magcache K: most consecutive skipped steps'),
  }),
});
