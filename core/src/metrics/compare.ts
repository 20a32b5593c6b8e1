import { SlipstreamError } from '../errors/index.js';

/**
 * Error metrics between an output `a` and a reference `b`. All sums run in float64, whatever
 * the input type, so that the metric's own rounding stays far below the errors it measures
 * (float32 sums of 10^7 terms can be off in the fourth digit).
 */

export type Values = ArrayLike<number>;

/** Checks lengths and finiteness once, so each metric loop stays simple. */
export function checkPair(a: Values, b: Values, what = 'metric'): void {
  if (a.length !== b.length) {
    throw new SlipstreamError('SLIP_E_SHAPE_MISMATCH', `${what}: expected a and b of equal length, got ${a.length} and ${b.length}`);
  }
  if (a.length === 0) throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `${what}: expected at least one element`);
  checkFinite(a, 'a', what);
  checkFinite(b, 'b', what);
}

function checkFinite(x: Values, name: string, what: string): void {
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) {
      // A NaN in an output is a finding in itself; a metric that quietly became NaN would hide
      // where it came from.
      throw new SlipstreamError('SLIP_E_NON_FINITE', `${what}: expected finite values, got ${x[i]} at ${name}[${i}]`);
    }
  }
}

/**
 * a·b / (|a| |b|), clamped to [-1, 1]. Two all-zero inputs count as identical (1); one
 * all-zero input against a non-zero one as unrelated (0).
 */
export function cosineSimilarity(a: Values, b: Values): number {
  checkPair(a, b, 'cosineSimilarity');
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  if (na === 0 || nb === 0) return na === nb ? 1 : 0;
  // One square root of the product rounds once (exact ±1 for parallel vectors); fall back to
  // two when the product leaves the float64 range.
  const prod = na * nb;
  const norm = Number.isFinite(prod) && prod > 0 ? Math.sqrt(prod) : Math.sqrt(na) * Math.sqrt(nb);
  return Math.max(-1, Math.min(1, dot / norm));
}

/** sum|a - b| / sum|b|, with b the reference. 0 when equal; Infinity if b is all zero and a is not. */
export function relativeL1(a: Values, b: Values): number {
  checkPair(a, b, 'relativeL1');
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += Math.abs(a[i] - b[i]);
    den += Math.abs(b[i]);
  }
  if (num === 0) return 0;
  return den === 0 ? Infinity : num / den;
}

export function mse(a: Values, b: Values): number {
  checkPair(a, b, 'mse');
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    sum += d * d;
  }
  return sum / a.length;
}

export function rmse(a: Values, b: Values): number {
  return Math.sqrt(mse(a, b));
}

/** mean |a − b|. */
export function meanAbsError(a: Values, b: Values): number {
  checkPair(a, b, 'meanAbsError');
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
}

/** mean |a|. */
export function meanAbs(a: Values): number {
  checkPair(a, a, 'meanAbs');
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]);
  return s / a.length;
}

export function maxAbsError(a: Values, b: Values): number {
  checkPair(a, b, 'maxAbsError');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * Peak signal-to-noise ratio in dB: 10 log10(dataRange^2 / MSE). `dataRange` is the span of
 * valid values (1 for images in [0, 1], 255 for 8-bit, 2 for [-1, 1]). Infinity when equal.
 */
export function psnr(a: Values, b: Values, dataRange: number): number {
  if (!(Number.isFinite(dataRange) && dataRange > 0)) {
    throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `psnr: expected a positive dataRange, got ${dataRange}`);
  }
  const e = mse(a, b);
  return e === 0 ? Infinity : 10 * Math.log10((dataRange * dataRange) / e);
}

/** exp(mean negative log-likelihood), the NLLs in nats per token. */
export function perplexity(nlls: Values): number {
  if (nlls.length === 0) throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', 'perplexity: expected at least one token');
  checkFinite(nlls, 'nlls', 'perplexity');
  let sum = 0;
  for (let i = 0; i < nlls.length; i++) sum += nlls[i];
  return Math.exp(sum / nlls.length);
}
