import { SlipstreamError } from '../errors/index.js';
import { checkPair, type Values } from './compare.js';

export interface SsimOptions {
  /** Span of valid values: 1 for [0, 1], 255 for 8-bit, 2 for [-1, 1]. Required: a wrong guess skews C1, C2. */
  dataRange: number;
  /** Gaussian window side; default 11. */
  windowSize?: number;
  /** Gaussian sigma; default 1.5. */
  sigma?: number;
  /** Default 0.01. */
  k1?: number;
  /** Default 0.03. */
  k2?: number;
}

function gaussianWindow(size: number, sigma: number): Float64Array {
  const w = new Float64Array(size);
  const mid = (size - 1) / 2;
  let sum = 0;
  for (let i = 0; i < size; i++) {
    w[i] = Math.exp(-((i - mid) ** 2) / (2 * sigma * sigma));
    sum += w[i];
  }
  for (let i = 0; i < size; i++) w[i] /= sum;
  return w;
}

/**
 * Filters one channel with the separable window, 'valid' region only (no padding), as the
 * reference MATLAB code of Wang et al. does with filter2(..., 'valid'). Produces the five
 * local moments E[x], E[y], E[x^2], E[y^2], E[xy] over each window position.
 */
function localMoments(a: Values, b: Values, h: number, w: number, c: number, ch: number, win: Float64Array): Float64Array[] {
  const n = win.length;
  const ow = w - n + 1;
  const oh = h - n + 1;
  // Horizontal pass: h rows of ow outputs, five moments interleaved.
  const rows = new Float64Array(h * ow * 5);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < ow; x++) {
      let sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
      for (let k = 0; k < n; k++) {
        const idx = (y * w + x + k) * c + ch;
        const u = a[idx];
        const v = b[idx];
        const g = win[k];
        sx += g * u;
        sy += g * v;
        sxx += g * u * u;
        syy += g * v * v;
        sxy += g * u * v;
      }
      const o = (y * ow + x) * 5;
      rows[o] = sx;
      rows[o + 1] = sy;
      rows[o + 2] = sxx;
      rows[o + 3] = syy;
      rows[o + 4] = sxy;
    }
  }
  const out = Array.from({ length: 5 }, () => new Float64Array(oh * ow));
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      for (let m = 0; m < 5; m++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += win[k] * rows[((y + k) * ow + x) * 5 + m];
        out[m][y * ow + x] = s;
      }
    }
  }
  return out;
}

/**
 * Mean SSIM (Wang, Bovik, Sheikh, Simoncelli 2004) of two images in row-major [H, W] or
 * [H, W, C] layout: Gaussian window 11 with sigma 1.5, K1 = 0.01, K2 = 0.03, C1 = (K1 L)^2,
 * C2 = (K2 L)^2, averaged over window positions and then over channels. No downsampling;
 * both sides must be at least the window size.
 */
export function ssim(a: Values, b: Values, shape: readonly number[], options: SsimOptions): number {
  checkPair(a, b, 'ssim');
  const { dataRange, windowSize = 11, sigma = 1.5, k1 = 0.01, k2 = 0.03 } = options;
  if (!(Number.isFinite(dataRange) && dataRange > 0)) {
    throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `ssim: expected a positive dataRange, got ${dataRange}`);
  }
  if (!Number.isInteger(windowSize) || windowSize < 1 || !(sigma > 0)) {
    throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `ssim: expected a positive integer windowSize and positive sigma, got ${windowSize} and ${sigma}`);
  }
  if ((shape.length !== 2 && shape.length !== 3) || !shape.every((d) => Number.isSafeInteger(d) && d > 0)) {
    throw new SlipstreamError('SLIP_E_SHAPE_MISMATCH', `ssim: expected a shape [H, W] or [H, W, C] of positive integers, got [${shape.join(', ')}]`);
  }
  const [h, w, c = 1] = shape;
  if (h * w * c !== a.length) {
    throw new SlipstreamError('SLIP_E_SHAPE_MISMATCH', `ssim: shape [${shape.join(', ')}] holds ${h * w * c} values, but the images have ${a.length}`);
  }
  if (h < windowSize || w < windowSize) {
    throw new SlipstreamError('SLIP_E_SHAPE_MISMATCH', `ssim: expected images of at least ${windowSize}x${windowSize}, got ${h}x${w}`);
  }
  const c1 = (k1 * dataRange) ** 2;
  const c2 = (k2 * dataRange) ** 2;
  const win = gaussianWindow(windowSize, sigma);
  let total = 0;
  for (let ch = 0; ch < c; ch++) {
    const [mx, my, exx, eyy, exy] = localMoments(a, b, h, w, c, ch, win);
    let sum = 0;
    for (let i = 0; i < mx.length; i++) {
      const ux = mx[i];
      const uy = my[i];
      const vx = exx[i] - ux * ux;
      const vy = eyy[i] - uy * uy;
      const cov = exy[i] - ux * uy;
      sum += ((2 * ux * uy + c1) * (2 * cov + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
    }
    total += sum / mx.length;
  }
  return total / c;
}
