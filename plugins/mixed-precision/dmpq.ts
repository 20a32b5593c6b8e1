/**
 * DMPQ routing (6Bit-Diffusion): a block's relative NVFP4 error at step t follows its Γ at the
 * previous step (E_rel ≈ αΓ + β), so a block with Γ above the threshold runs with INT8 activations
 * and one below it with NVFP4. Γ is per block here (the statistic is a block's), so every linear
 * of a block shares the route; a block with no Γ yet runs INT8, the safe side.
 */
import type { BlockRunOptions, BlockStats } from '../../core/src/runtime/index.js';
import type { PluginParams } from '../manifest.js';
import type { PrecisionPolicy } from '../policy.js';
import type { mixedPrecisionManifest } from './manifest.js';

export type MixedPrecisionParams = PluginParams<typeof mixedPrecisionManifest>;

export class MixedPrecision implements PrecisionPolicy {
  readonly id = 'mixed-precision';
  #gamma: (number | undefined)[] = [];

  /** gammaThreshold: the resolved threshold (params or profile); needed for route 'dmpq'. */
  constructor(readonly params: MixedPrecisionParams, readonly gammaThreshold: number) {}

  reset(): void {
    this.#gamma = [];
  }

  choose(block: number): BlockRunOptions {
    const route = this.params.route;
    if (route !== 'dmpq') return { precision: route };
    const g = this.#gamma[block];
    return { precision: g === undefined || g > this.gammaThreshold ? 'int8' : 'nvfp4' };
  }

  observe(block: number, stats: BlockStats): void {
    this.#gamma[block] = stats.gamma;
  }
}
