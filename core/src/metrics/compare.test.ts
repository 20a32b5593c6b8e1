import { describe, expect, it } from 'vitest';
import { cosineSimilarity, maxAbsError, mse, perplexity, psnr, relativeL1, rmse } from './compare.js';
import { codeOf } from '../../../test/errors.js';

describe('closed-form values', () => {
  it('cosine similarity', () => {
    expect(cosineSimilarity([1, 0], [0, 1])).toBe(0);
    expect(cosineSimilarity([1, 2, 3], [2, 4, 6])).toBe(1);
    expect(cosineSimilarity([1, 2], [-1, -2])).toBe(-1);
    // [1,1]·[1,0] / (sqrt 2 * 1)
    expect(cosineSimilarity([1, 1], [1, 0])).toBeCloseTo(Math.SQRT1_2, 15);
    expect(cosineSimilarity([0, 0], [0, 0])).toBe(1);
    expect(cosineSimilarity([0, 0], [1, 0])).toBe(0);
  });

  it('relative L1 uses b as the reference', () => {
    expect(relativeL1([1, 2, 3], [1, 2, 4])).toBe(1 / 7);
    expect(relativeL1([1, 2, 4], [1, 2, 3])).toBe(1 / 6);
    expect(relativeL1([0, 0], [0, 0])).toBe(0);
    expect(relativeL1([1, 0], [0, 0])).toBe(Infinity);
  });

  it('MSE, RMSE, max abs error', () => {
    expect(mse([1, 2, 3, 4], [1, 2, 3, 6])).toBe(1);
    expect(rmse([0, 0, 0, 0], [1, -1, 1, -1])).toBe(1);
    expect(rmse([0, 0], [3, 4])).toBe(Math.sqrt(12.5));
    expect(maxAbsError([1, -5, 2], [1, 2, 2.5])).toBe(7);
  });

  it('PSNR of a known MSE', () => {
    // MSE 0.01 with range 1 -> 10 log10(1 / 0.01) = 20 dB
    expect(psnr([0.1, 0.1], [0, 0.2], 1)).toBeCloseTo(20, 12);
    // MSE 1 with range 255 -> 20 log10(255)
    expect(psnr([1, 2], [0, 1], 255)).toBeCloseTo(20 * Math.log10(255), 12);
    expect(psnr([1, 2], [1, 2], 1)).toBe(Infinity);
    expect(codeOf(() => psnr([1], [1], 0))).toBe('SLIP_E_INVALID_ARGUMENT');
  });

  it('perplexity', () => {
    expect(perplexity([Math.log(4), Math.log(4)])).toBeCloseTo(4, 12);
    expect(perplexity([0, Math.log(9)])).toBeCloseTo(3, 12);
  });
});

describe('float64 accumulation', () => {
  it('stays exact where a float32 sum would drift', () => {
    // In float32, 2^24 + 1 rounds back to 2^24, so a float32 accumulator would lose every 1
    // after the first term; float64 keeps them all.
    const a = Float32Array.from([2 ** 24, 2, 2, 2, 2]);
    const ref = Float32Array.from([2 ** 24, 1, 1, 1, 1]);
    expect(relativeL1(a, ref)).toBe(4 / (2 ** 24 + 4));
    expect(mse(ref, new Float32Array(5))).toBe((2 ** 48 + 4) / 5);
    expect(Math.fround(Math.fround(2 ** 24) + 1)).toBe(2 ** 24);
  });
});

describe('argument checks', () => {
  it('rejects mismatched, empty and non-finite inputs', () => {
    expect(() => rmse([1, 2], [1])).toThrow('mse: expected a and b of equal length, got 2 and 1');
    expect(codeOf(() => rmse([1, 2], [1]))).toBe('SLIP_E_SHAPE_MISMATCH');
    expect(codeOf(() => cosineSimilarity([], []))).toBe('SLIP_E_INVALID_ARGUMENT');
    expect(() => relativeL1([1, NaN], [1, 2])).toThrow('relativeL1: expected finite values, got NaN at a[1]');
    expect(codeOf(() => maxAbsError([1], [Infinity]))).toBe('SLIP_E_NON_FINITE');
    expect(codeOf(() => perplexity([]))).toBe('SLIP_E_INVALID_ARGUMENT');
  });
});
