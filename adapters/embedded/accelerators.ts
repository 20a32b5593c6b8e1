/**
 * From a workflow's `accelerate` section (and the calibration profile) to the policies the
 * runner drives and the weights the accelerated model needs.
 */
import path from 'node:path';

import { SlipstreamError } from '../../core/src/errors/index.js';
import type { WanLoadOptions } from '../../core/src/runtime/index.js';
import { TemporalDeltaCache } from '../../plugins/delta-cache/tdc.js';
import { MixedPrecision } from '../../plugins/mixed-precision/dmpq.js';
import type { Profile } from '../../plugins/profile.js';
import { EasyCache } from '../../plugins/reference-caches/easycache.js';
import { FirstBlockCache, MagCache, TeaCache } from '../../plugins/reference-caches/stack-caches.js';
import { SparseAttention } from '../../plugins/sparse-attention/policy.js';
import type { Accelerators } from './pipeline.js';
import type { Workflow } from './workflow.js';

export type AccelerateSection = Workflow['accelerate'];

function needProfile<T>(profile: Profile | undefined, what: string, pick: (p: Profile) => T | undefined): T {
  if (profile === undefined) {
    throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected a calibration profile ("profile" in the workflow, from \`slipstream calibrate\`) for ${what}, got none`);
  }
  const value = pick(profile);
  if (value === undefined) {
    throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected the calibration profile to have ${what}, got a profile without it (ComfyUI's calibration records DMPQ only; run \`slipstream calibrate\`)`);
  }
  return value;
}

/** How the accelerated model must be loaded: NVFP4 weights when mixed precision is on, from the
 *  plugin's checkpoint (resolved against the model folder) when it names one. */
export function acceleratedWeights(a: AccelerateSection, modelDir: string): WanLoadOptions {
  const mp = a['mixed-precision'];
  if (mp === undefined) return { weights: 'fp32' };
  if (mp.checkpoint !== undefined) return { weights: 'nvfp4', nvfp4Checkpoint: path.resolve(modelDir, mp.checkpoint) };
  return { weights: 'nvfp4', hadamardBlock: mp.hadamardBlock };
}

export function buildAccelerators(a: AccelerateSection, profile: Profile | undefined, steps: number): Accelerators {
  const out: Accelerators = {};
  const mp = a['mixed-precision'];
  if (mp !== undefined) {
    const threshold =
      mp.route !== 'dmpq' ? 0 : (mp.gammaThreshold ?? needProfile(profile, 'mixed-precision route "dmpq" without a gammaThreshold', (p) => p.dmpq.gammaThreshold));
    out.precision = new MixedPrecision(mp, threshold);
  }
  const dc = a['delta-cache'];
  if (dc !== undefined) {
    out.skip = new TemporalDeltaCache(dc);
    if (dc.purify) out.purify = { outlierRatio: dc.outlierRatio, precision: dc.purifyPrecision };
  }
  const sa = a['sparse-attention'];
  if (sa !== undefined) out.attention = new SparseAttention(sa);
  const rc = a['reference-caches'];
  if (rc !== undefined) {
    switch (rc.method) {
      case 'teacache':
        out.skip = new TeaCache(rc, needProfile(profile, 'teacache (its rescaling polynomial)', (p) => p.teacache?.coefficients));
        break;
      case 'first-block-cache':
        out.skip = new FirstBlockCache(rc);
        break;
      case 'magcache':
        out.skip = new MagCache(rc, needProfile(profile, 'magcache (its magnitude ratios)', (p) => p.magcache?.ratios), steps);
        break;
      case 'easycache':
        out.output = new EasyCache(rc);
        break;
    }
  }
  return out;
}

/** One line naming what is on, for reports. */
export function describeAccelerators(a: AccelerateSection): string {
  const parts: string[] = [];
  const mp = a['mixed-precision'];
  if (mp) parts.push(`NVFP4 weights (${mp.checkpoint ? `GPTQ, ${mp.checkpoint}` : `round-to-nearest, Hadamard ${mp.hadamardBlock}`}), activations ${mp.route === 'dmpq' ? 'routed NVFP4/INT8 by DMPQ' : `all ${mp.route}`}`);
  const dc = a['delta-cache'];
  if (dc) parts.push(`TDC τ=${dc.threshold}, N_max=${dc.maxSkips}${dc.purify ? `, PDR (outlier ratio ${dc.outlierRatio})` : ', no PDR'}`);
  const rc = a['reference-caches'];
  if (rc) parts.push(`${rc.method} threshold ${rc.threshold}`);
  const sa = a['sparse-attention'];
  if (sa) parts.push(`sparse self-attention (Top-k ${sa.topk}${sa.topp ? `, Top-p ${sa.topp}` : ''}) from ${Math.round(100 * sa.startPercent)}% of the steps, after block ${sa.denseBlocks}`);
  return parts.length ? parts.join('; ') : 'nothing (same as the baseline)';
}
