/**
 * `slipstream calibrate`: the workflow's sampler run on N prompts with the NVFP4-weight model at
 * full activation precision, trying every block of every step twice (NVFP4 activations, then full)
 * to measure what the plugins need:
 *   dmpq      (Γ_{t−1}, E_rel) per block and step, E_rel = mean|out_nvfp4 − out_full| / mean|out_full|
 *             (the NVFP4 activations' error relative to the block's output); fitted E_rel ≈ αΓ + β
 *   teacache  per step, the change of e0 (relative L1) against the change of the stack residual;
 *             a 4th-order polynomial maps one to the other
 *   magcache  per step, mean over tokens of ‖r_t‖/‖r_{t−1}‖ of the stack residual, on the first
 *             prompt (MagCache calibrates on a single sample)
 */
import path from 'node:path';

import { SlipstreamError } from '../../core/src/errors/index.js';
import { writeFileAtomic } from '../../core/src/fs/index.js';
import { fitLine, fitPolynomial, meanAbs, meanAbsError, relativeL1 } from '../../core/src/metrics/index.js';
import { createProgress, type ProgressStream } from '../../core/src/progress/index.js';
import { WanModel, type Denoiser } from '../../core/src/runtime/index.js';
import { mixedPrecisionManifest } from '../../plugins/mixed-precision/manifest.js';
import { profileSchema, type Profile } from '../../plugins/profile.js';
import { acceleratedWeights } from './accelerators.js';
import { LatentCodec, PromptTable, generateVideo } from './wan-mini.js';
import type { LoadedWorkflow } from './workflow.js';

export interface CalibrateOptions {
  prompts: string[];
  /** The NVFP4 error a block may have; 'median' = the median measured E_rel. */
  targetError: number | 'median';
  progress?: ProgressStream | null;
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** mean over tokens of ‖a_l‖ / ‖b_l‖ (rows of width dim). */
function meanNormRatio(a: Float32Array, b: Float32Array, dim: number): number {
  let sum = 0, rows = 0;
  for (let r = 0; r + dim <= a.length; r += dim) {
    let na = 0, nb = 0;
    for (let j = r; j < r + dim; j++) {
      na += a[j]! * a[j]!;
      nb += b[j]! * b[j]!;
    }
    if (nb > 0) {
      sum += Math.sqrt(na / nb);
      rows++;
    }
  }
  return rows ? sum / rows : 1;
}

export async function calibrate(loaded: LoadedWorkflow, o: CalibrateOptions): Promise<Profile> {
  const w = loaded.workflow;
  const mp = w.accelerate['mixed-precision'];
  const model = await WanModel.load(loaded.modelDir, acceleratedWeights({ ...w.accelerate, 'mixed-precision': mp ?? mixedPrecisionManifest.params.parse({}) }, loaded.modelDir));
  const [table, codec] = await Promise.all([PromptTable.load(), LatentCodec.load()]);
  for (const p of o.prompts) table.context(p);
  const session = model.createSession();
  const L = model.config.layers, dim = model.config.dim;
  const gammas: number[] = [], errors: number[] = [];
  const teaX: number[] = [], teaY: number[] = [];
  const ratios: number[] = [];
  const progress = createProgress({
    total: o.prompts.length * w.sampler.steps,
    label: `calibrating on ${o.prompts.length} prompt(s)`,
    unit: 'steps',
    ...(o.progress === null ? { enabled: false } : o.progress ? { stream: o.progress } : {}),
  });
  try {
    for (const [pi, prompt] of o.prompts.entries()) {
      session.reset();
      const prevGamma: (number | undefined)[] = new Array(L);
      let prevE0: Float32Array | null = null, prevR: Float32Array | null = null;
      const denoise: Denoiser = (x, t, ctx) => {
        session.begin(x, t, ctx);
        const e0 = session.timeEmbedding().data;
        const embedded = session.readTokens();
        for (let i = 0; i < L; i++) {
          const input = session.readTokens();
          session.runBlock(i, { precision: 'nvfp4' });
          const outQ = session.readTokens().data;
          session.writeTokens(input);
          const full = session.runBlock(i, { precision: 'full' });
          const outF = session.readTokens().data;
          const eRel = meanAbsError(outQ, outF) / Math.max(meanAbs(outF), 1e-30);
          if (prevGamma[i] !== undefined) {
            gammas.push(prevGamma[i]!);
            errors.push(eRel);
          }
          prevGamma[i] = full.gamma;
        }
        const final = session.readTokens().data;
        const r = new Float32Array(final.length);
        for (let j = 0; j < r.length; j++) r[j] = final[j]! - embedded.data[j]!;
        if (prevE0 !== null && prevR !== null) {
          teaX.push(relativeL1(e0, prevE0));
          teaY.push(relativeL1(r, prevR));
          if (pi === 0) ratios.push(meanNormRatio(r, prevR, dim));
        }
        prevE0 = e0;
        prevR = r;
        return session.finish();
      };
      await generateVideo(denoise, model, table, codec, {
        prompt,
        seed: w.seed + pi,
        steps: w.sampler.steps,
        cfg: w.sampler.cfg,
        shift: w.sampler.shift,
        solver: w.sampler.solver,
        frames: w.video.frames,
        size: w.video.size,
        onStep: () => progress.tick(),
      });
    }
  } finally {
    progress.finish();
    session.free();
    model.free();
  }
  const line = fitLine(gammas, errors);
  const target = o.targetError === 'median' ? median(errors) : o.targetError;
  if (!(target > 0)) throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected a positive target error, got ${target}`);
  // A non-increasing fit carries no routing signal; fall back to the median Γ (half and half).
  const threshold = line.slope > 0 ? Math.max(0, (target - line.intercept) / line.slope) : median(gammas);
  return profileSchema.parse({
    format: 'slipstream-profile/1',
    model: path.basename(loaded.modelDir),
    sampler: { solver: w.sampler.solver, steps: w.sampler.steps, shift: w.sampler.shift, cfg: w.sampler.cfg },
    prompts: o.prompts,
    dmpq: { alpha: line.slope, beta: line.intercept, r2: line.r2, targetError: target, gammaThreshold: threshold, samples: gammas.length },
    teacache: { coefficients: fitPolynomial(teaX, teaY, 4) },
    magcache: { ratios },
  });
}

/** Writes a profile atomically (temp name, then rename). */
export async function writeProfile(file: string, profile: Profile): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(profile, null, 2) + '\n');
}

