import { describe, expect, it } from 'vitest';
import { ssim } from './ssim.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function image(h: number, w: number, c: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: h * w * c }, () => r());
}

/**
 * Direct 2-D reference: the full 11x11 Gaussian weight at every valid window position, straight
 * from the paper's definitions, with no separable filtering.
 */
function referenceSsim(a: Float32Array, b: Float32Array, h: number, w: number, c: number, L: number): number {
  const n = 11;
  const g: number[] = [];
  for (let i = 0; i < n; i++) g.push(Math.exp(-((i - 5) ** 2) / (2 * 1.5 * 1.5)));
  const total2d = g.reduce((s, x) => s + x, 0) ** 2;
  const C1 = (0.01 * L) ** 2;
  const C2 = (0.03 * L) ** 2;
  let perChannel = 0;
  for (let ch = 0; ch < c; ch++) {
    let sum = 0;
    let count = 0;
    for (let y = 0; y + n <= h; y++) {
      for (let x = 0; x + n <= w; x++) {
        let mx = 0, my = 0;
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
          const wt = (g[i] * g[j]) / total2d;
          mx += wt * a[((y + i) * w + x + j) * c + ch];
          my += wt * b[((y + i) * w + x + j) * c + ch];
        }
        let vx = 0, vy = 0, cov = 0;
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
          const wt = (g[i] * g[j]) / total2d;
          const dx = a[((y + i) * w + x + j) * c + ch] - mx;
          const dy = b[((y + i) * w + x + j) * c + ch] - my;
          vx += wt * dx * dx;
          vy += wt * dy * dy;
          cov += wt * dx * dy;
        }
        sum += ((2 * mx * my + C1) * (2 * cov + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2));
        count++;
      }
    }
    perChannel += sum / count;
  }
  return perChannel / c;
}

describe('ssim', () => {
  it('is 1 for identical images', () => {
    const x = image(16, 20, 3, 1);
    expect(ssim(x, x, [16, 20, 3], { dataRange: 1 })).toBeCloseTo(1, 12);
  });

  it('matches the closed form for constant images', () => {
    // Zero variance: SSIM = (2 c1 c2 + C1) / (c1^2 + c2^2 + C1) at every window.
    const a = new Float32Array(12 * 12).fill(0.25);
    const b = new Float32Array(12 * 12).fill(0.75);
    const C1 = 0.01 ** 2;
    const want = (2 * 0.25 * 0.75 + C1) / (0.25 ** 2 + 0.75 ** 2 + C1);
    expect(ssim(a, b, [12, 12], { dataRange: 1 })).toBeCloseTo(want, 12);
  });

  it('matches a direct 2-D float64 computation on random images', () => {
    const h = 17, w = 23, c = 2;
    const a = image(h, w, c, 7);
    const r = rng(9);
    const b = a.map((v) => v + (r() - 0.5) * 0.2);
    const got = ssim(a, b, [h, w, c], { dataRange: 1 });
    expect(got).toBeCloseTo(referenceSsim(a, b, h, w, c, 1), 10);
    expect(got).toBeLessThan(0.99);
    expect(ssim(b, a, [h, w, c], { dataRange: 1 })).toBeCloseTo(got, 12);
  });

  it('scales with the data range like the definition', () => {
    const a = image(11, 11, 1, 3);
    const b = image(11, 11, 1, 4);
    const scaled = (x: Float32Array) => x.map((v) => v * 255);
    expect(ssim(scaled(a), scaled(b), [11, 11], { dataRange: 255 })).toBeCloseTo(ssim(a, b, [11, 11], { dataRange: 1 }), 5);
  });

  it('checks shapes and options', () => {
    const x = new Float32Array(100);
    expect(() => ssim(x, x, [10, 10], { dataRange: 1 })).toThrow('ssim: expected images of at least 11x11, got 10x10');
    expect(() => ssim(x, x, [10, 11], { dataRange: 1 })).toThrow(/holds 110 values, but the images have 100/);
    expect(() => ssim(x, x, [100], { dataRange: 1 })).toThrow(/\[H, W\] or \[H, W, C\]/);
    expect(() => ssim(x, x, [10, 10], { dataRange: 0 })).toThrow(/dataRange/);
  });
});
