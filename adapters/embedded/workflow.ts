/**
 * The embedded workflow: which model, prompts and sampler, and which plugins accelerate the run.
 * `accelerate` is keyed by plugin id (the manifests' ids; a test checks they agree) and each value is exactly that plugin's manifest params, so a
 * parameter is declared once (in plugins/<id>/manifest.ts) and validated, defaulted and documented
 * here from there. JSON Schema: workflows/schema/workflow.schema.json (npm run schemas).
 */
import path from 'node:path';

import { z } from 'zod';

import { SOLVER_NAMES, type SolverName } from '../../core/src/runtime/index.js';
import { defineSchema, parseJsonFile, type SchemaType } from '../../core/src/schema/index.js';
import { deltaCacheManifest } from '../../plugins/delta-cache/manifest.js';
import { mixedPrecisionManifest } from '../../plugins/mixed-precision/manifest.js';
import { referenceCachesManifest } from '../../plugins/reference-caches/manifest.js';
import { sparseAttentionManifest } from '../../plugins/sparse-attention/manifest.js';

export const workflowSchema = defineSchema(
  'workflow',
  z
    .strictObject({
      $schema: z.string().optional().describe('path of this JSON Schema, for editors'),
      name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" or "-"').describe('names the output folder out/<name>-<time>'),
      model: z.string().min(1).describe('a Wan2.1-format model folder (shards + index), relative to the workflow file'),
      profile: z.string().min(1).optional().describe('calibration profile JSON from `slipstream calibrate`, relative to the workflow file'),
      prompts: z.array(z.string().min(1)).min(1).max(16).describe('one video per prompt'),
      seed: z.int().min(0).default(0).describe('noise seed of the first prompt; prompt i uses seed + i'),
      sampler: z
        .strictObject({
          solver: z.enum(SOLVER_NAMES as unknown as [SolverName, ...SolverName[]]).default('euler').describe('euler, dpmpp-2m (DPM-Solver++ 2M) or unipc (UniPC bh2)'),
          steps: z.int().min(1).max(1000).default(30),
          cfg: z.number().finite().default(5).describe('classifier-free guidance scale'),
          shift: z.number().positive().default(1).describe('time_snr_shift of the sigma schedule'),
        })
        .prefault({}),
      video: z
        .strictObject({
          frames: z.int().min(1).max(64).default(8).describe('latent frames'),
          size: z.int().min(2).max(128).multipleOf(2).default(16).describe('latent height and width (even: the patch is 2×2)'),
        })
        .prefault({}),
      accelerate: z
        .strictObject({
          'mixed-precision': mixedPrecisionManifest.params.optional().describe(mixedPrecisionManifest.description),
          'delta-cache': deltaCacheManifest.params.optional().describe(deltaCacheManifest.description),
          'reference-caches': referenceCachesManifest.params.optional().describe(referenceCachesManifest.description),
          'sparse-attention': sparseAttentionManifest.params.optional().describe(sparseAttentionManifest.description),
        })
        .describe('plugins of the accelerated pipeline, by id; leave one out to turn it off'),
      output: z
        .strictObject({
          dir: z.string().min(1).default('out').describe('parent of the run folder, relative to the current directory'),
          gifScale: z.int().min(1).max(16).default(4).describe('nearest-neighbour upscale of the GIFs'),
          fps: z.number().positive().max(50).default(6),
        })
        .prefault({}),
    })
    .refine((w) => !(w.accelerate['delta-cache'] && w.accelerate['reference-caches']), {
      message: 'expected at most one of "delta-cache" and "reference-caches": both decide which blocks to skip',
      path: ['accelerate'],
    }),
  { description: 'An embedded Slipstream workflow (`slipstream run`): model, prompts, sampler and the plugins that accelerate it.' },
);

export type Workflow = SchemaType<typeof workflowSchema>;

export interface LoadedWorkflow {
  workflow: Workflow;
  file: string;
  /** model and profile resolved against the workflow's folder. */
  modelDir: string;
  profileFile: string | undefined;
}

export async function loadWorkflow(file: string): Promise<LoadedWorkflow> {
  const workflow = await parseJsonFile(file, workflowSchema);
  const dir = path.dirname(path.resolve(file));
  return {
    workflow,
    file,
    modelDir: path.resolve(dir, workflow.model),
    profileFile: workflow.profile === undefined ? undefined : path.resolve(dir, workflow.profile),
  };
}
