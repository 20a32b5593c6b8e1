/**
 * LinearPlan: y = x · Wᵀ (+ bias) with W quantized. The plan is made once per weight (the native
 * side repacks it and keeps what it needs, so the weight's tensors may be dropped after create)
 * and run many times, off the event loop with run() or inline with runSync().
 */
import { SlipstreamError, invalidArgument } from '../errors/index.js';
import type { NativeLinearPlan, NativeQweight } from '../native/binding.js';
import { native } from '../native/index.js';
import { callNative, callNativeAsync } from '../native/call.js';
import type { QuantOptions } from '../quant/index.js';
import { toNativeParams } from '../quant/options.js';
import { Tensor, shapeToString } from '../tensor/index.js';
import { activations, optionalBias, requireTensor } from './checks.js';
import { CODES_PER_ITEM, WEIGHT_FORMATS, parseWeightFormat, toNativeLinearParams, type LinearOptions, type WeightFormat } from './options.js';

/**
 * A weight as quantize() returns it (codes, scales, global laid out as compressed-tensors stores
 * them; `options` as given to quantize: granularity, groupSize, block), or format 'F32' with the
 * float weight [N, K] as codes.
 */
export interface QuantizedWeight {
  format: WeightFormat;
  codes: Tensor;
  /** Required for every format but F32. */
  scales?: Tensor;
  /** NVFP4: F32 [1]; NVFP4_TJ2: F32 [N, K/128]. */
  global?: Tensor;
  options?: QuantOptions;
}

function toQweight(w: unknown): { q: NativeQweight; n: number; k: number; format: WeightFormat } {
  if (w instanceof Tensor) return toQweight({ format: 'F32', codes: w });
  if (typeof w !== 'object' || w === null) throw invalidArgument('w', 'a QuantizedWeight { format, codes, scales, global? } or an F32 Tensor', w);
  const o = w as Partial<QuantizedWeight>;
  const format = parseWeightFormat(o.format, 'w.format');
  const codes = requireTensor(o.codes, 'w.codes');
  if (codes.rank !== 2) {
    const per = CODES_PER_ITEM[format];
    throw new SlipstreamError(
      'SLIP_E_SHAPE_MISMATCH',
      `expected a 2-D [N, ${per === 1 ? 'K' : `K/${per}`}] tensor for w.codes of a ${format} weight, got ${shapeToString(codes.shape)}`,
    );
  }
  const q: NativeQweight =
    format === 'F32'
      ? { format: WEIGHT_FORMATS.F32, codes: codes.toNative() }
      : { ...toNativeParams(format, o.options), codes: codes.toNative(), scales: requireTensor(o.scales, 'w.scales').toNative() };
  if (o.global !== undefined) q.global = requireTensor(o.global, 'w.global').toNative();
  return { q, n: codes.shape[0], k: codes.shape[1] * CODES_PER_ITEM[format], format };
}

export class LinearPlan {
  /** Output features (rows of W). */
  readonly n: number;
  /** Input features (columns of W). */
  readonly k: number;
  readonly format: WeightFormat;
  readonly #plan: NativeLinearPlan;

  private constructor(plan: NativeLinearPlan, n: number, k: number, format: WeightFormat) {
    this.#plan = plan;
    this.n = n;
    this.k = k;
    this.format = format;
  }

  /** Plans y = x · Wᵀ for a quantized weight, or an F32 Tensor [N, K] (the FP32 baseline). */
  static create(w: QuantizedWeight | Tensor, options: LinearOptions = {}): LinearPlan {
    const { q, n, k, format } = toQweight(w);
    const params = toNativeLinearParams(options);
    const plan = callNative(() => native().linearPlanCreate(q, params));
    return new LinearPlan(plan, n, k, format);
  }

  get freed(): boolean {
    return this.#plan.freed;
  }

  #prepare(x: unknown, bias: unknown) {
    if (this.#plan.freed) {
      throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', 'expected a live LinearPlan, got one already freed (free() was called)');
    }
    const { x2, lead } = activations(x, this.k);
    const b = optionalBias(bias, this.n);
    const y = Tensor.zeros('F32', [x2.shape[0], this.n]);
    return { args: [x2.toNative(), b?.toNative() ?? null, y.toNative()] as const, y: y.reshape([...lead, this.n]) };
  }

  /** x: F32 [..., K]; bias: F32 [N]. Resolves with F32 [..., N]; works on the libuv pool. */
  async run(x: Tensor, bias?: Tensor): Promise<Tensor<'F32'>> {
    const { args, y } = this.#prepare(x, bias);
    await callNativeAsync(() => this.#plan.run(...args));
    return y;
  }

  /** As run(), on the calling thread (small products, or where blocking is fine). */
  runSync(x: Tensor, bias?: Tensor): Tensor<'F32'> {
    const { args, y } = this.#prepare(x, bias);
    callNative(() => this.#plan.runSync(...args));
    return y;
  }

  /** Releases the native plan now (else the garbage collector does). Idempotent; not while a run() is in flight. */
  free(): void {
    if (!this.#plan.freed) callNative(() => this.#plan.free());
  }
}
