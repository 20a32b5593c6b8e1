/**
 * The step-level caches that reuse the residual of the whole block stack (TeaCache, First Block
 * Cache, MagCache): when one skips a step, every block of it is skipped, which on this runtime
 * re-adds each block's delta from the last computed step: together, exactly the stack residual
 * of that step. The first and last steps always run.
 */
import { relativeL1 } from '../../core/src/metrics/index.js';
import type { BlockStats } from '../../core/src/runtime/index.js';
import type { PluginParams } from '../manifest.js';
import type { CallInfo, CallSignals, SkipPolicy } from '../policy.js';
import type { referenceCachesManifest } from './manifest.js';

export type ReferenceCacheParams = PluginParams<typeof referenceCachesManifest>;

abstract class StackCache implements SkipPolicy {
  abstract readonly id: string;
  protected skipStep = false;
  protected computedOnce = false;

  constructor(readonly params: ReferenceCacheParams, protected readonly defaultWarmup: number) {}

  protected edge(call: CallInfo): boolean {
    return !this.computedOnce || call.step < (this.params.warmupSteps ?? this.defaultWarmup) || call.step === call.steps - 1;
  }

  reset(): void {
    this.skipStep = false;
    this.computedOnce = false;
  }

  abstract beginCall(call: CallInfo, signals: CallSignals): void;

  skip(): boolean {
    return this.skipStep;
  }

  observe(_block: number, _stats: BlockStats, _signals: CallSignals): void {}

  endCall(skipped: number): void {
    if (skipped === 0) this.computedOnce = true;
  }
}

/**
 * TeaCache: d = mean|e0_t − e0_{t−1}| / mean|e0_{t−1}| on the timestep-embedding modulation input
 * (for Wan, e0), rescaled by a polynomial f fitted per model (the profile's); A += max(0, f(d))
 * (a fitted quartic can dip below zero between its samples, and a negative change is no change);
 * skip while A < δ, else compute and reset A.
 */
export class TeaCache extends StackCache {
  readonly id = 'teacache';
  #prev: Float32Array | null = null;
  #acc = 0;

  constructor(params: ReferenceCacheParams, readonly coefficients: readonly number[]) {
    super(params, 1);
  }

  override reset(): void {
    super.reset();
    this.#prev = null;
    this.#acc = 0;
  }

  beginCall(call: CallInfo, signals: CallSignals): void {
    const e0 = signals.timeEmbedding();
    const d = this.#prev === null ? Infinity : relativeL1(e0, this.#prev);
    this.#prev = e0;
    if (this.edge(call)) {
      this.skipStep = false;
      this.#acc = 0;
      return;
    }
    const c = this.coefficients;
    const f = (((c[0]! * d + c[1]!) * d + c[2]!) * d + c[3]!) * d + c[4]!;
    this.#acc += Math.max(0, f);
    this.skipStep = this.#acc < this.params.threshold;
    if (!this.skipStep) this.#acc = 0;
  }
}

/**
 * First Block Cache: block 0 always runs; its residual is compared with the block-0 residual of
 * the last fully computed step (mean|r − r_ref| / mean|r_ref|); below the threshold the other
 * blocks are skipped, else they run and r becomes the new reference.
 */
export class FirstBlockCache extends StackCache {
  readonly id = 'first-block-cache';
  #before: Float32Array | null = null;
  #ref: Float32Array | null = null;
  #current: Float32Array | null = null;
  #edge = true;

  constructor(params: ReferenceCacheParams) {
    super(params, 1);
  }

  override reset(): void {
    super.reset();
    this.#ref = null;
  }

  beginCall(call: CallInfo, signals: CallSignals): void {
    this.skipStep = false;
    this.#edge = this.edge(call);
    this.#before = signals.tokens();
  }

  override observe(block: number, _stats: BlockStats, signals: CallSignals): void {
    if (block !== 0 || this.#before === null) return;
    const after = signals.tokens();
    const r = new Float32Array(after.length);
    for (let j = 0; j < r.length; j++) r[j] = after[j]! - this.#before[j]!;
    this.#current = r;
    this.skipStep = !this.#edge && this.#ref !== null && relativeL1(r, this.#ref) < this.params.threshold;
  }

  override endCall(skipped: number): void {
    super.endCall(skipped);
    if (skipped === 0 && this.#current !== null) this.#ref = this.#current;
  }
}

/**
 * MagCache: the stack residual's magnitude ratio γ_t = mean_tokens ‖r_t‖/‖r_{t−1}‖, calibrated once
 * (the profile's ratios); after the retention phase R ← R·γ_t, err += |1 − R|; skip while
 * err < δ and at most K steps in a row, else compute and reset R = 1, err = 0.
 */
export class MagCache extends StackCache {
  readonly id = 'magcache';
  #ratio = 1;
  #err = 0;
  #run = 0;

  constructor(params: ReferenceCacheParams, readonly ratios: readonly number[], steps: number) {
    super(params, Math.max(1, Math.floor(0.2 * steps))); // int(0.2 · steps), as MagCache's code truncates
  }

  override reset(): void {
    super.reset();
    this.#ratio = 1;
    this.#err = 0;
    this.#run = 0;
  }

  /** γ for step t of this run, resampled when the calibration had another step count. */
  #gamma(call: CallInfo): number {
    const r = this.ratios;
    if (r.length === call.steps - 1) return r[call.step - 1] ?? 1;
    const pos = ((call.step - 1) / Math.max(1, call.steps - 2)) * (r.length - 1);
    const lo = Math.floor(pos), hi = Math.min(r.length - 1, lo + 1);
    return r[lo]! + (r[hi]! - r[lo]!) * (pos - lo);
  }

  beginCall(call: CallInfo): void {
    if (this.edge(call)) {
      this.skipStep = false;
    } else {
      this.#ratio *= this.#gamma(call);
      this.#err += Math.abs(1 - this.#ratio);
      this.skipStep = this.#err < this.params.threshold && this.#run < this.params.maxSkips;
    }
    if (this.skipStep) {
      this.#run++;
    } else {
      this.#ratio = 1;
      this.#err = 0;
      this.#run = 0;
    }
  }
}
