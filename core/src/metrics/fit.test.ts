import { describe, expect, it } from 'vitest';

import { fitLine, fitPolynomial } from './fit.js';

describe('fitLine', () => {
  it('recovers an exact line and reports r² = 1', () => {
    const x = [0.1, 0.5, 0.9, 2, 3.5];
    const f = fitLine(x, x.map((v) => 0.3 * v - 0.02));
    expect(f.slope).toBeCloseTo(0.3, 12);
    expect(f.intercept).toBeCloseTo(-0.02, 12);
    expect(f.r2).toBeCloseTo(1, 12);
  });

  it('matches the closed form on noisy points', () => {
    const x = [1, 2, 3, 4], y = [1, 3, 2, 5];
    // dx = (−1.5, −0.5, 0.5, 1.5), dy = (−1.75, 0.25, −0.75, 2.25): slope = Σdxdy/Σdx² = 5.5/5,
    // intercept = 2.75 − 1.1·2.5 = 0, r² = 5.5²/(5·8.75)
    const f = fitLine(x, y);
    expect(f.slope).toBeCloseTo(1.1, 12);
    expect(f.intercept).toBeCloseTo(0, 12);
    expect(f.r2).toBeCloseTo(30.25 / 43.75, 12);
  });

  it('refuses bad input', () => {
    expect(() => fitLine([1], [1])).toThrow(/at least 2 points/);
    expect(() => fitLine([1, 1], [1, 2])).toThrow(/distinct x/);
    expect(() => fitLine([1, NaN], [1, 2])).toThrow(/finite/);
    expect(() => fitLine([1, 2], [1])).toThrow(/as many x as y/);
  });
});

describe('fitPolynomial', () => {
  it('recovers a quartic exactly, highest power first, off-centre x', () => {
    const c = [2, -3, 0.5, 7, -1];
    const x = Array.from({ length: 12 }, (_, i) => 0.05 + 0.02 * i);
    const p = (v: number) => (((c[0]! * v + c[1]!) * v + c[2]!) * v + c[3]!) * v + c[4]!;
    const fit = fitPolynomial(x, x.map(p), 4);
    // The fit is exact in exact arithmetic; the bound is the conditioning of powers of x on
    // [0.05, 0.27] expanded back from [-1, 1] (~1e5 amplification of 1e-16 rounding).
    for (let i = 0; i < 5; i++) expect(Math.abs(fit[i]! - c[i]!)).toBeLessThan(1e-7 * Math.max(1, Math.abs(c[i]!)) * 1e3);
    for (const v of x) expect(Math.abs((((fit[0]! * v + fit[1]!) * v + fit[2]!) * v + fit[3]!) * v + fit[4]! - p(v))).toBeLessThan(1e-9);
  });
});
