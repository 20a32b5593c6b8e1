/**
 * EasyCache: reuses the model's transformation Δ = v − x (output minus input) of the last computed
 * step, with no calibration. At each computed step after another computed step, the transformation
 * rate k = mean|v_t − v_last| / mean|x_t − x_last| is refreshed; on later steps the predicted output
 * change ε = k · mean|x_t − x_{t−1}| / mean|v_last| accumulates, and Δ is reused (v = x + Δ) while
 * the sum stays below τ. The first warm-up steps (5) and the last step always run.
 */
import { meanAbs, meanAbsError } from '../../core/src/metrics/index.js';
import type { PluginParams } from '../manifest.js';
import type { CallInfo, OutputCache } from '../policy.js';
import type { referenceCachesManifest } from './manifest.js';

type Params = PluginParams<typeof referenceCachesManifest>;

export class EasyCache implements OutputCache {
  readonly id = 'easycache';
  #xPrev: Float32Array | null = null;   // x of the previous call, computed or not
  #xLast: Float32Array | null = null;   // x and v of the last computed call
  #vLast: Float32Array | null = null;
  #rate: number | null = null;
  #acc = 0;

  constructor(readonly params: Params) {}

  reset(): void {
    this.#xPrev = this.#xLast = this.#vLast = null;
    this.#rate = null;
    this.#acc = 0;
  }

  reuse(call: CallInfo, x: Float32Array): Float32Array | null {
    const prev = this.#xPrev;
    this.#xPrev = Float32Array.from(x);
    const warmup = this.params.warmupSteps ?? 5;
    if (call.step < warmup || call.step === call.steps - 1 || this.#rate === null || prev === null || this.#vLast === null) return null;
    this.#acc += (this.#rate * meanAbsError(x, prev)) / Math.max(meanAbs(this.#vLast), 1e-12);
    if (this.#acc >= this.params.threshold) return null;
    const v = new Float32Array(x.length);
    for (let i = 0; i < v.length; i++) v[i] = x[i]! + (this.#vLast[i]! - this.#xLast![i]!);
    return v;
  }

  observe(_call: CallInfo, x: Float32Array, v: Float32Array): void {
    if (this.#xLast !== null && this.#vLast !== null) {
      const dx = meanAbsError(x, this.#xLast);
      if (dx > 0) this.#rate = meanAbsError(v, this.#vLast) / dx;
    }
    this.#xLast = Float32Array.from(x);
    this.#vLast = Float32Array.from(v);
    this.#acc = 0;
  }
}
