/**
 * The accelerated forward of the embedded runtime: a WanSession stepped block by block, with the
 * plugins' policies deciding per call and per block (plugins/policy.ts):
 *   output cache  may answer the whole call from the last computed one (EasyCache)
 *   skip policy   which blocks re-add their cached delta instead of running (TDC, stack caches)
 *   precision     at which activation precision a running block's linears go (DMPQ)
 *   purify        Purified Delta Refresh, where skipping and low precision meet: every run of a
 *                 block refreshes its cached delta, so it runs with the outlier guard (linears
 *                 with max|X|/mean|X| above the ratio at BF16 or FP32), and the first run after
 *                 a skip goes INT8 rather than NVFP4, because the skip left no fresh Γ to route by.
 * What every block did at every call is recorded (blockMap) for the report.
 */
import type { BlockRunOptions, BlockStats, CallInfo, Denoiser, GuardPrecision, WanModel, WanSession } from '../../core/src/runtime/index.js';
import { Tensor } from '../../core/src/tensor/index.js';
import type { CallSignals, OutputCache, PrecisionPolicy, SkipPolicy } from '../../plugins/policy.js';
import type { SparseAttention } from '../../plugins/sparse-attention/policy.js';
import type { BlockAction } from './report/types.js';

export interface Accelerators {
  skip?: SkipPolicy;
  precision?: PrecisionPolicy;
  output?: OutputCache;
  attention?: SparseAttention;
  /** Purified Delta Refresh: the outlier ratio (25) and the precision outlier layers go to; undefined for none. */
  purify?: { outlierRatio: number; precision: GuardPrecision };
}

function actionOf(options: BlockRunOptions, stats: BlockStats): BlockAction {
  if (stats.lowbitLinears === 0) return 'fp32';
  if (stats.fullLinears > 0) return 'mixed';
  return options.precision === 'nvfp4' ? 'nvfp4' : 'int8';
}

export class AcceleratedRunner {
  readonly #session: WanSession;
  readonly #layers: number;
  /** [call][block] of the current video. */
  blockMap: BlockAction[][] = [];
  /** [call]: mean fraction of self-attention key blocks skipped over the blocks that ran. */
  attentionSparsity: number[] = [];
  #ran: boolean[] = [];
  #skippedLast: boolean[] = [];

  constructor(readonly model: WanModel, readonly accelerators: Accelerators) {
    this.#session = model.createSession();
    this.#layers = model.config.layers;
  }

  /** Before each video: forget every cache and the map. */
  reset(): void {
    this.#session.reset();
    this.accelerators.skip?.reset();
    this.accelerators.precision?.reset();
    this.accelerators.output?.reset();
    this.blockMap = [];
    this.attentionSparsity = [];
    this.#ran = [];
    this.#skippedLast = [];
  }

  denoiser(): Denoiser {
    return (x, t, context, call) => this.#call(x, t, context, call);
  }

  #call(x: Tensor<'F32'>, t: Tensor<'F32'>, context: Tensor<'F32'>, call: CallInfo): Tensor<'F32'> {
    const { skip, precision, output, attention, purify } = this.accelerators;
    const reused = output?.reuse(call, x.data);
    if (reused) {
      this.blockMap.push(new Array<BlockAction>(this.#layers).fill('skip'));
      this.attentionSparsity.push(0);
      return Tensor.fromArray('F32', [...x.shape], reused);
    }
    const s = this.#session;
    s.begin(x, t, context);
    const signals: CallSignals = { timeEmbedding: () => s.timeEmbedding().data, tokens: () => s.readTokens().data };
    skip?.beginCall(call, signals);
    const row: BlockAction[] = [];
    let skipped = 0, sparsity = 0;
    for (let i = 0; i < this.#layers; i++) {
      if (this.#ran[i] && skip?.skip(i)) {
        s.skipBlock(i);
        this.#skippedLast[i] = true;
        row.push('skip');
        skipped++;
        continue;
      }
      const options: BlockRunOptions = { ...precision?.choose(i, call), ...attention?.options(i, call) };
      if (purify !== undefined && precision !== undefined) {
        options.outlierGuard = purify.outlierRatio;
        options.guardPrecision = purify.precision;
        if (this.#skippedLast[i] && options.precision === 'nvfp4') options.precision = 'int8';
      }
      const stats = s.runBlock(i, options);
      this.#ran[i] = true;
      this.#skippedLast[i] = false;
      skip?.observe(i, stats, signals);
      precision?.observe(i, stats);
      row.push(actionOf(options, stats));
      sparsity += stats.attentionSparsity;
    }
    skip?.endCall?.(skipped);
    this.blockMap.push(row);
    this.attentionSparsity.push(this.#layers > skipped ? sparsity / (this.#layers - skipped) : 0);
    const v = s.finish();
    output?.observe(call, x.data, v.data);
    return v;
  }

  free(): void {
    this.#session.free();
  }
}
