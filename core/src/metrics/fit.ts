/** Least-squares fits used by calibration (float64 throughout). */
import { SlipstreamError } from '../errors/index.js';

export interface LineFit {
  slope: number;
  intercept: number;
  /** Coefficient of determination; 1 for a perfect fit, 0 when x explains nothing. */
  r2: number;
}

function checkXY(x: ArrayLike<number>, y: ArrayLike<number>, min: number, what: string): void {
  if (x.length !== y.length) throw new SlipstreamError('SLIP_E_SHAPE_MISMATCH', `${what}: expected as many x as y, got ${x.length} and ${y.length}`);
  if (x.length < min) throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `${what}: expected at least ${min} points, got ${x.length}`);
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i]!) || !Number.isFinite(y[i]!)) {
      throw new SlipstreamError('SLIP_E_NON_FINITE', `${what}: expected finite points, got (${x[i]}, ${y[i]}) at index ${i}`);
    }
  }
}

/** y ≈ slope·x + intercept by ordinary least squares. */
export function fitLine(x: ArrayLike<number>, y: ArrayLike<number>): LineFit {
  checkXY(x, y, 2, 'fitLine');
  const n = x.length;
  let mx = 0, my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i]!;
    my += y[i]!;
  }
  mx /= n;
  my /= n;
  let sxx = 0, sxy = 0, syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i]! - mx, dy = y[i]! - my;
    sxx += dx * dx;
    sxy += dx * dy;
    syy += dy * dy;
  }
  if (sxx === 0) throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', 'fitLine: expected at least two distinct x values, got one');
  const slope = sxy / sxx;
  return { slope, intercept: my - slope * mx, r2: syy === 0 ? 1 : (sxy * sxy) / (sxx * syy) };
}

/**
 * Coefficients c[0..degree] of the highest power first (c0 x^d + … + c_d) minimising Σ(p(x) − y)².
 * x is scaled to [-1, 1] before solving the normal equations so that they stay well conditioned,
 * and the result is expanded back.
 */
export function fitPolynomial(x: ArrayLike<number>, y: ArrayLike<number>, degree: number): number[] {
  if (!Number.isInteger(degree) || degree < 0 || degree > 8) throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `fitPolynomial: expected a degree in 0..8, got ${degree}`);
  checkXY(x, y, degree + 1, 'fitPolynomial');
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < x.length; i++) {
    lo = Math.min(lo, x[i]!);
    hi = Math.max(hi, x[i]!);
  }
  const mid = (hi + lo) / 2, half = (hi - lo) / 2 || 1;
  const m = degree + 1;
  // Normal equations A a = b in the scaled variable u, a[k] multiplies u^k.
  const A = Array.from({ length: m }, () => new Float64Array(m));
  const b = new Float64Array(m);
  for (let i = 0; i < x.length; i++) {
    const u = (x[i]! - mid) / half;
    const pw = new Float64Array(m);
    pw[0] = 1;
    for (let k = 1; k < m; k++) pw[k] = pw[k - 1]! * u;
    for (let r = 0; r < m; r++) {
      b[r] += pw[r]! * y[i]!;
      for (let c = 0; c < m; c++) A[r]![c] += pw[r]! * pw[c]!;
    }
  }
  // Gaussian elimination with partial pivoting.
  for (let col = 0; col < m; col++) {
    let piv = col;
    for (let r = col + 1; r < m; r++) if (Math.abs(A[r]![col]!) > Math.abs(A[piv]![col]!)) piv = r;
    if (Math.abs(A[piv]![col]!) < 1e-300) throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `fitPolynomial: expected at least ${m} distinct x values for degree ${degree}`);
    [A[col], A[piv]] = [A[piv]!, A[col]!];
    [b[col], b[piv]] = [b[piv]!, b[col]!];
    for (let r = col + 1; r < m; r++) {
      const f = A[r]![col]! / A[col]![col]!;
      for (let c = col; c < m; c++) A[r]![c] -= f * A[col]![c]!;
      b[r] -= f * b[col]!;
    }
  }
  const a = new Float64Array(m);
  for (let r = m - 1; r >= 0; r--) {
    let s = b[r]!;
    for (let c = r + 1; c < m; c++) s -= A[r]![c]! * a[c]!;
    a[r] = s / A[r]![r]!;
  }
  // Expand Σ a_k ((x − mid)/half)^k into powers of x.
  const coef = new Float64Array(m); // coef[j] multiplies x^j
  let basis = new Float64Array(m); // ((x − mid)/half)^k as powers of x
  basis[0] = 1;
  for (let k = 0; k < m; k++) {
    for (let j = 0; j < m; j++) coef[j] += a[k]! * basis[j]!;
    const next = new Float64Array(m);
    for (let j = 0; j < m; j++) {
      if (j + 1 < m) next[j + 1] += basis[j]! / half;
      next[j] -= (basis[j]! * mid) / half;
    }
    basis = next;
  }
  return Array.from(coef).reverse();
}
