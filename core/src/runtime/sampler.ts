/**
 * Flow-matching sampling for Wan-format DiTs, as models/wan-mini/sample.py does it:
 *   sigma_i = shift(1 - i/N), shift(s) = k s / (1 + (k - 1) s)   (ComfyUI's time_snr_shift)
 *   v = v_uncond + cfg (v_cond - v_uncond)                        (classifier-free guidance)
 *   x <- solver step from sigma_i to sigma_{i+1} with v           (solvers.ts: Euler, DPM-Solver++(2M), UniPC)
 * The model sees t = sigma * 1000. Conditional and unconditional halves run as one batch of 2B
 * (context first, then the unconditional context), as sample.py does, so one model call per step.
 * The initial noise is GaussianNoise(seed) (noise.ts): deterministic for a seed, not torch's numbers.
 */
import { SlipstreamError, invalidArgument } from '../errors/index.js';
import { Tensor, shapeToString } from '../tensor/index.js';
import { GaussianNoise } from './noise.js';
import { SOLVER_NAMES, createSolver, type SolverName } from './solvers.js';
import type { WanModel } from './wan.js';

/** One model call of a sampling run. */
export interface CallInfo {
  step: number;
  steps: number;
  /** The noise level of this call, 1 → 0. */
  sigma: number;
}

/** The model as the sampler sees it: velocity for the batched x, t (sigma·1000) and context. */
export type Denoiser = (x: Tensor<'F32'>, t: Tensor<'F32'>, context: Tensor<'F32'>, call: CallInfo) => Promise<Tensor<'F32'>> | Tensor<'F32'>;

export interface SampleOptions {
  /** F32 [B, Lc, textDim]: the prompts' embeddings. */
  context: Tensor;
  /** F32 like context; default zeros (sample.py's unconditional input). */
  uncond?: Tensor;
  seed: number;
  steps: number;
  /** Guidance scale; 1 runs the conditional branch alone. */
  cfg: number;
  /** time_snr_shift k; 1 = the plain linear schedule. */
  shift: number;
  /** Latent extents [F, H, W]. */
  latent: [number, number, number];
  /** Default 'euler'. */
  solver?: SolverName;
  /** Called after each step with (step index, steps). */
  onStep?: (step: number, steps: number) => void;
}

/** steps + 1 noise levels from 1 to 0 (float64), shifted. */
export function flowSigmas(steps: number, shift: number): number[] {
  if (!Number.isInteger(steps) || steps < 1) throw invalidArgument('steps', 'a positive integer', steps);
  if (!(shift > 0) || !Number.isFinite(shift)) throw invalidArgument('shift', 'a positive finite number', shift);
  return Array.from({ length: steps + 1 }, (_, i) => {
    const s = 1 - i / steps;
    return (shift * s) / (1 + (shift - 1) * s);
  });
}

/** The plain FP32 forward of a model as a Denoiser. */
export function modelDenoiser(model: WanModel): Denoiser {
  return (x, t, context) => model.forward(x, t, context);
}

/** Flow-matching sampling with CFG; resolves with F32 latents [B, in, F, H, W]. */
export async function sample(denoise: Denoiser, inChannels: number, o: SampleOptions): Promise<Tensor<'F32'>> {
  const sig = flowSigmas(o.steps, o.shift);
  if (!Number.isFinite(o.cfg)) throw invalidArgument('cfg', 'a finite number', o.cfg);
  const solverName = o.solver ?? 'euler';
  if (!SOLVER_NAMES.includes(solverName)) throw invalidArgument('solver', `one of ${SOLVER_NAMES.join(', ')}`, solverName);
  const ctx = o.context;
  if (!(ctx instanceof Tensor) || ctx.dtype !== 'F32' || ctx.rank !== 3) {
    throw new SlipstreamError('SLIP_E_SHAPE_MISMATCH', `expected an F32 [B, Lc, textDim] tensor for context, got ${ctx instanceof Tensor ? `${ctx.dtype} ${shapeToString(ctx.shape)}` : String(ctx)}`);
  }
  const uncond = o.uncond ?? Tensor.zeros('F32', ctx.shape);
  if (uncond.dtype !== 'F32' || shapeToString(uncond.shape) !== shapeToString(ctx.shape)) {
    throw new SlipstreamError('SLIP_E_SHAPE_MISMATCH', `expected F32 ${shapeToString(ctx.shape)} (like context) for uncond, got ${uncond.dtype} ${shapeToString(uncond.shape)}`);
  }
  const b = ctx.shape[0]!;
  const [f, h, w] = o.latent;
  const x = new GaussianNoise(o.seed).tensor([b, inChannels, f, h, w]);
  const guided = o.cfg !== 1;
  const n = x.numel;
  // Both halves in one batch: [x; x], [context; uncond].
  const xx = Tensor.zeros('F32', [guided ? 2 * b : b, inChannels, f, h, w]);
  const cc = guided ? Tensor.zeros('F32', [2 * b, ...ctx.shape.slice(1)]) : (ctx as Tensor<'F32'>);
  if (guided) {
    cc.data.set(ctx.data as Float32Array, 0);
    cc.data.set(uncond.data as Float32Array, ctx.numel);
  }
  const t = Tensor.zeros('F32', [xx.shape[0]!]);
  const solver = createSolver(solverName, sig);
  const g = new Float32Array(n);
  for (let i = 0; i < o.steps; i++) {
    xx.data.set(x.data, 0);
    if (guided) xx.data.set(x.data, n);
    t.data.fill(sig[i]! * 1000);
    const v = await denoise(xx, t, cc, { step: i, steps: o.steps, sigma: sig[i]! });
    for (let j = 0; j < n; j++) {
      const vc = v.data[j]!;
      g[j] = guided ? v.data[n + j]! + o.cfg * (vc - v.data[n + j]!) : vc;
    }
    solver.step(i, x.data, g);
    o.onStep?.(i, o.steps);
  }
  return x;
}
