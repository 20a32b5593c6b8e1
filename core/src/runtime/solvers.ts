/**
 * ODE update rules of flow-matching samplers, kept apart from the model so one sampling loop
 * serves all of them:
 *
 *   const solver = createSolver(name, sigmas);
 *   for (let i = 0; i < sigmas.length - 1; i++) solver.step(i, x, model(x, sigmas[i]));
 *
 * Convention (rectified flow, as Wan trains it): x_sigma = (1 - sigma) x0 + sigma noise, the model
 * predicts v = noise - x0, so the data prediction is x0 = x - sigma v and the probability-flow
 * ODE is dx/dsigma = v. With alpha = 1 - sigma and the log-SNR lambda = log(alpha / sigma), the
 * ODE's exact solution from s to t in data-prediction form (DPM-Solver++, Lu et al. 2022) is
 *
 *   x_t = (sigma_t / sigma_s) x_s + sigma_t * integral_{lambda_s}^{lambda_t} e^lambda x0(lambda) dlambda.
 *
 * Writing h = lambda_t - lambda_s and Taylor-expanding x0 in lambda around lambda_s turns the
 * integral into alpha_t * sum_k g_k(h) x0^(k), with
 *
 *   g_k(h) = e^-h integral_0^h e^tau tau^k / k! dtau = sum_{j>=0} (-h)^j h^(k+1) / (k+1+j)!,
 *   g_0 = 1 - e^-h,  g_k = h^k / k! - g_{k-1}.
 *
 * Keeping only g_0 is the first-order step, which for this alpha and sigma is Euler exactly
 * (x_t = x_s + (sigma_t - sigma_s) v, algebraically). The multistep solvers estimate the
 * derivatives x0^(k) from earlier data predictions:
 *
 * - DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): with r = h_{i-1} / h_i,
 *     x_{i+1} = (sigma_{i+1}/sigma_i) x_i + alpha_{i+1} g_0(h_i) [(1 + 1/(2r)) x0_i - 1/(2r) x0_{i-1}].
 *
 * - UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of
 *   Diffusion Models"), data-prediction form with B(h) = 1 - e^-h: the bh2 choice, the paper's
 *   B2(h) = e^h - 1 with h -> -h and the sign folded into the update. With
 *   r_m = (lambda_{s_m} - lambda_s) / h and D_m = x0_{s_m} - x0_s for the other points s_m used,
 *     x_t = (sigma_t/sigma_s) x_s + alpha_t g_0(h) x0_s + alpha_t B(h) sum_m a_m D_m / r_m,
 *   where the a_m solve the paper's order conditions sum_m a_m r_m^(k-1) = k! g_k(h) / (h^k B(h)),
 *   k = 1..(number of a_m), i.e. they make sum_m (B a_m / r_m) D_m reproduce sum_k g_k x0^(k).
 *   UniP-2 (predictor) uses the previous point (r_1 < 0). UniC (corrector) uses the same points
 *   plus the model output at the new point t (r = 1) and recomputes x_t from x_s: UniC-1 after a
 *   first-order predictor, UniC-2 after UniP-2, each one order above its predictor.
 *   A single coefficient is set to 1/2, the h -> 0 limit of its condition (k! g_1/(h B) = 1/2 +
 *   h/12 + ...): the O(h) difference costs no order, the authors' reference sampler and Wan's
 *   scheduler make the same choice, and it makes UniC-1 the trapezoidal rule in e^lambda (alpha_t
 *   g_0 = sigma_t (e^lambda_t - e^lambda_s)), exact for x0 linear in e^lambda even across the
 *   infinite first step out of sigma = 1. With a_1 = 1/2 UniP-2 is DPM-Solver++(2M) term for
 *   term; the two samplers differ by the corrector. UniC-2 solves its 2x2 system.
 *
 * The corrector needs the model output at the point it corrects, which a one-evaluation-per-step
 * loop only has at the start of the next step: step(i) first corrects the x it is given (the
 * predictor's result of step i - 1) using v, which the model evaluated at that uncorrected x,
 * then runs the predictor from the corrected x. The data prediction of the uncorrected point is
 * what enters the history, so the corrector costs no extra evaluation (UniPC's point). The last
 * step's result is not corrected: no evaluation follows it. So for UniPC, step() rewrites x before
 * moving it: the caller must pass the v of the x it passes, and keep nothing derived from x.
 *
 * Like those schedulers ('lower_order_final'), every solver takes its last step at first order:
 * to sigma = 0 the log-SNR is infinite and r = 0, so the second-order terms are undefined, and at
 * first order that step returns the data prediction itself. A first step out of sigma = 1
 * (lambda = -inf) leaves the next step's previous point at r = -inf, where its weight vanishes:
 * that step is first order too, which is the limit of the formulas.
 *
 * States are FP32 (like the model's tensors); coefficients and each element's arithmetic are
 * float64, so rounding happens once per stored value.
 */
import { SlipstreamError, invalidArgument } from '../errors/index.js';

export type SolverName = 'euler' | 'dpmpp-2m' | 'unipc';

export const SOLVER_NAMES: readonly SolverName[] = Object.freeze(['euler', 'dpmpp-2m', 'unipc'] as const);

export interface Solver {
  readonly name: SolverName;
  /** Highest order of the predictor's Taylor expansion (UniPC's corrector adds one where used). */
  readonly order: number;
  /**
   * Moves x (in place) from sigmas[i] to sigmas[i + 1], given v = the model's velocity at
   * (x, sigmas[i]). Steps run in order 0, 1, ...; step 0 starts a new trajectory (history reset).
   * v is read, not kept.
   */
  step(i: number, x: Float32Array, v: Float32Array): void;
}

/** Per-interval float64 coefficients of the schedule. */
interface Schedule {
  readonly sigma: Float64Array;
  readonly alpha: Float64Array;
  /** log((1 - sigma) / sigma): -Infinity at sigma = 1, +Infinity at sigma = 0. */
  readonly lambda: Float64Array;
  /** h[i] = lambda[i+1] - lambda[i] (> 0, +Infinity at either end). */
  readonly h: Float64Array;
  /** sigma[i+1] / sigma[i]: the weight of x_i in every update. */
  readonly ratio: Float64Array;
  /** alpha[i+1] g_0(h[i]) = alpha[i+1] - sigma[i+1] alpha[i] / sigma[i]: the weight of x0_i. */
  readonly c0: Float64Array;
  readonly steps: number;
}

function schedule(sigmas: readonly number[]): Schedule {
  if (!Array.isArray(sigmas)) throw invalidArgument('sigmas', 'an array of noise levels', sigmas);
  if (sigmas.length < 2) throw invalidArgument('sigmas.length', 'at least 2 noise levels (one step)', sigmas.length);
  const n = sigmas.length;
  const sigma = new Float64Array(n), alpha = new Float64Array(n), lambda = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const s = sigmas[k];
    if (typeof s !== 'number' || !Number.isFinite(s) || s < 0 || s > 1) {
      throw invalidArgument(`sigmas[${k}]`, 'a finite number in [0, 1]', s);
    }
    if (k > 0 && !(s < sigma[k - 1]!)) {
      throw invalidArgument(`sigmas[${k}]`, `a value below sigmas[${k - 1}] = ${sigma[k - 1]} (sigmas strictly decreasing)`, s);
    }
    sigma[k] = s;
    alpha[k] = 1 - s;
    lambda[k] = Math.log(1 - s) - Math.log(s);
  }
  const steps = n - 1;
  const h = new Float64Array(steps), ratio = new Float64Array(steps), c0 = new Float64Array(steps);
  for (let i = 0; i < steps; i++) {
    h[i] = lambda[i + 1]! - lambda[i]!;
    ratio[i] = sigma[i + 1]! / sigma[i]!;
    // alpha_t (1 - e^-h) with e^-h = sigma_t alpha_s / (alpha_t sigma_s), finite at both ends;
    // expm1 keeps the small-h case accurate.
    c0[i] = Number.isFinite(h[i]!) ? -alpha[i + 1]! * Math.expm1(-h[i]!) : alpha[i + 1]! - (sigma[i + 1]! * alpha[i]!) / sigma[i]!;
  }
  return { sigma, alpha, lambda, h, ratio, c0, steps };
}

/**
 * k! g_k(h) / (h^k g_0(h)): the right-hand side of UniPC's order conditions with B = g_0 (bh2).
 * Uses the series for small h, where the recurrence g_k = h^k/k! - g_{k-1} cancels.
 */
function orderCondition(k: number, h: number): number {
  // G_k = g_k / h^(k+1); then k! g_k / (h^k g_0) = k! G_k / G_0.
  const G = (m: number): number => {
    if (h <= 1) {
      let term = 1, sum = 0;
      for (let f = 1; f <= m + 1; f++) term /= f; // 1 / (m+1)!
      for (let j = 0; j < 40 && Math.abs(term) > 1e-20; j++) {
        sum += term;
        term *= -h / (m + 2 + j);
      }
      return sum;
    }
    let g = -Math.expm1(-h), pow = 1, fact = 1;
    for (let q = 1; q <= m; q++) {
      pow *= h;
      fact *= q;
      g = pow / fact - g;
    }
    return g / (pow * h);
  };
  let fact = 1;
  for (let q = 2; q <= k; q++) fact *= q;
  return (fact * G(k)) / G(0);
}

abstract class BaseSolver implements Solver {
  abstract readonly name: SolverName;
  abstract readonly order: number;
  protected readonly s: Schedule;
  private next = 0;
  protected size = -1;

  constructor(sigmas: readonly number[]) {
    this.s = schedule(sigmas);
  }

  step(i: number, x: Float32Array, v: Float32Array): void {
    const steps = this.s.steps;
    if (!Number.isInteger(i) || i < 0 || i >= steps) throw invalidArgument('i', `a step index in [0, ${steps - 1}]`, i);
    // The history belongs to one trajectory: a skipped or repeated step would mix two.
    if (i !== 0 && i !== this.next) throw invalidArgument('i', `step ${this.next} (steps run in order; 0 restarts)`, i);
    if (!(x instanceof Float32Array)) throw invalidArgument('x', 'a Float32Array', x);
    if (!(v instanceof Float32Array)) throw invalidArgument('v', 'a Float32Array', v);
    if (v.length !== x.length) {
      throw new SlipstreamError('SLIP_E_SHAPE_MISMATCH', `expected ${x.length} elements (like x) for v, got ${v.length}`);
    }
    if (i !== 0 && x.length !== this.size) {
      throw new SlipstreamError('SLIP_E_SHAPE_MISMATCH', `expected ${this.size} elements (as at step 0) for x, got ${x.length}`);
    }
    if (i === 0) {
      if (x.length !== this.size) this.allocate(x.length);
      this.size = x.length;
    }
    this.update(i, x, v);
    this.next = i + 1;
  }

  /** Sizes the history buffers for a trajectory of n elements. */
  protected allocate(_n: number): void {}

  protected abstract update(i: number, x: Float32Array, v: Float32Array): void;

  protected isLast(i: number): boolean {
    return i === this.s.steps - 1;
  }
}

class EulerSolver extends BaseSolver {
  readonly name = 'euler' as const;
  readonly order = 1;

  protected update(i: number, x: Float32Array, v: Float32Array): void {
    const dt = this.s.sigma[i + 1]! - this.s.sigma[i]!;
    for (let j = 0; j < x.length; j++) x[j] = x[j]! + dt * v[j]!;
  }
}

class DpmSolverPP2M extends BaseSolver {
  readonly name = 'dpmpp-2m' as const;
  readonly order = 2;
  private cur = new Float32Array(0);
  private prev = new Float32Array(0);

  protected override allocate(n: number): void {
    this.cur = new Float32Array(n);
    this.prev = new Float32Array(n);
  }

  protected update(i: number, x: Float32Array, v: Float32Array): void {
    const { sigma, h, ratio, c0 } = this.s;
    const si = sigma[i]!, a = ratio[i]!, c = c0[i]!;
    const cur = this.cur, prev = this.prev;
    // h[i-1] = inf (a first step out of sigma = 1) gives 1/(2r) = 0: first order, the limit.
    const k = i > 0 && !this.isLast(i) && Number.isFinite(h[i - 1]!) ? (0.5 * h[i]!) / h[i - 1]! : 0;
    for (let j = 0; j < x.length; j++) {
      const x0 = x[j]! - si * v[j]!;
      cur[j] = x0;
      x[j] = a * x[j]! + c * (k === 0 ? x0 : (1 + k) * x0 - k * prev[j]!);
    }
    this.cur = prev;
    this.prev = cur;
  }
}

class UniPCSolver extends BaseSolver {
  readonly name = 'unipc' as const;
  readonly order = 2;
  /** Data predictions at steps i, i-1, i-2 (rotated each step). */
  private m0 = new Float32Array(0);
  private m1 = new Float32Array(0);
  private m2 = new Float32Array(0);
  /** The (corrected) state the previous predictor started from: the corrector restarts there. */
  private xPrev = new Float32Array(0);
  private prevOrder = 0;

  protected override allocate(n: number): void {
    this.m0 = new Float32Array(n);
    this.m1 = new Float32Array(n);
    this.m2 = new Float32Array(n);
    this.xPrev = new Float32Array(n);
  }

  protected update(i: number, x: Float32Array, v: Float32Array): void {
    const { sigma, lambda, h, ratio, c0 } = this.s;
    const n = x.length;
    const m0 = this.m0, m1 = this.m1, m2 = this.m2, xPrev = this.xPrev;
    const si = sigma[i]!;
    // The model saw the uncorrected x: its data prediction is taken there, before correcting.
    for (let j = 0; j < n; j++) m0[j] = x[j]! - si * v[j]!;

    if (i > 0) {
      // UniC over the interval [i-1, i]: recompute x_i from x_{i-1} with x0_i (r = 1) added.
      const a = ratio[i - 1]!, c = c0[i - 1]!;
      if (this.prevOrder === 1) {
        for (let j = 0; j < n; j++) x[j] = a * xPrev[j]! + c * (0.5 * (m1[j]! + m0[j]!));
      } else {
        const hs = h[i - 1]!;
        const r1 = (lambda[i - 2]! - lambda[i - 1]!) / hs;
        const b1 = orderCondition(1, hs), b2 = orderCondition(2, hs);
        // a1 + at = b1, r1 a1 + at = b2; r1 < 0 keeps 1 - r1 > 1.
        const a1 = (b1 - b2) / (1 - r1), at = b1 - a1;
        const w1 = a1 / r1;
        for (let j = 0; j < n; j++) {
          const base = m1[j]!;
          x[j] = a * xPrev[j]! + c * (base + w1 * (m2[j]! - base) + at * (m0[j]! - base));
        }
      }
    }

    // UniP: second order once there is a previous point with finite log-SNR, except the last step.
    const order = i > 0 && !this.isLast(i) && Number.isFinite(lambda[i - 1]!) ? 2 : 1;
    xPrev.set(x);
    const a = ratio[i]!, c = c0[i]!;
    if (order === 1) {
      for (let j = 0; j < n; j++) x[j] = a * x[j]! + c * m0[j]!;
    } else {
      const r1 = (lambda[i - 1]! - lambda[i]!) / h[i]!;
      const w1 = 0.5 / r1;
      for (let j = 0; j < n; j++) x[j] = a * x[j]! + c * (m0[j]! + w1 * (m1[j]! - m0[j]!));
    }
    this.prevOrder = order;
    this.m0 = m2;
    this.m1 = m0;
    this.m2 = m1;
  }
}

/** A solver for the noise levels sigmas (strictly decreasing in [0, 1], at least 2). */
export function createSolver(name: SolverName, sigmas: readonly number[]): Solver {
  switch (name) {
    case 'euler':
      return new EulerSolver(sigmas);
    case 'dpmpp-2m':
      return new DpmSolverPP2M(sigmas);
    case 'unipc':
      return new UniPCSolver(sigmas);
    default:
      throw invalidArgument('solver', `one of ${SOLVER_NAMES.map((s) => `'${s}'`).join(', ')}`, name);
  }
}
