/**
 * Where sparse attention applies: not in the early steps (the layout is still being decided and
 * attention is spread out), not in the first blocks (they see raw patch embeddings), and within a
 * step window. Everywhere else, the block's self-attention runs on the predicted block mask.
 * Low-bit arithmetic (precision int8) applies in every block and step, dense or sparse.
 */
import type { BlockRunOptions, CallInfo } from '../../core/src/runtime/index.js';
import type { PluginParams } from '../manifest.js';
import type { sparseAttentionManifest } from './manifest.js';

export type SparseAttentionParams = PluginParams<typeof sparseAttentionManifest>;

export class SparseAttention {
  readonly id = 'sparse-attention';

  constructor(readonly params: SparseAttentionParams) {}

  /** The attention fields of a block's run options for this call. */
  options(block: number, call: CallInfo): Pick<BlockRunOptions, 'sparseTopk' | 'sparseTopp' | 'lowBitAttention'> {
    const p = this.params;
    const lowBit = p.precision === 'int8' ? { lowBitAttention: true } : {};
    const progress = call.steps > 1 ? call.step / (call.steps - 1) : 0;
    if (block < p.denseBlocks || progress < p.startPercent || progress > p.endPercent) return lowBit;
    return { sparseTopk: p.topk, sparseTopp: p.topp, ...lowBit };
  }
}
