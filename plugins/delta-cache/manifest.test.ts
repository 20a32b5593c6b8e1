import { describe, expect, it } from 'vitest';

import { deltaCacheManifest } from './manifest.js';

const params = deltaCacheManifest.params;

/** The zod issue codes and paths of a rejected value (fails the test if it parses). */
function rejected(value: unknown): string[] {
  const r = params.safeParse(value);
  expect(r.success, `expected ${JSON.stringify(value)} to be rejected`).toBe(false);
  return r.error!.issues.map((i) => `${i.code}@${i.path.join('.')}`);
}

describe('delta-cache manifest', () => {
  it('names itself and where it runs, frozen', () => {
    expect(deltaCacheManifest.id).toBe('delta-cache');
    expect(deltaCacheManifest.runtimes).toEqual(['embedded', 'comfyui']);
    expect(deltaCacheManifest.source).toMatch(/6Bit-Diffusion/);
    expect(Object.isFrozen(deltaCacheManifest)).toBe(true);
  });

  it('parses {} to the documented defaults (τ 0.06, N_max 2, warm-up 4, final 1, PDR on, outlier ratio 25, BF16)', () => {
    expect(params.parse({})).toStrictEqual({
      threshold: 0.06,
      maxSkips: 2,
      warmupSteps: 4,
      finalSteps: 1,
      purify: true,
      outlierRatio: 25,
      purifyPrecision: 'bf16',
    });
  });

  it('keeps given values and accepts the range ends', () => {
    const all = { threshold: 0.5, maxSkips: 16, warmupSteps: 2, finalSteps: 0, purify: false, outlierRatio: 0.5, purifyPrecision: 'full' };
    expect(params.parse(all)).toStrictEqual(all);
    expect(params.parse({ maxSkips: 1 }).maxSkips).toBe(1);
  });

  it('rejects unknown keys', () => {
    expect(rejected({ tau: 0.1 })).toEqual(['unrecognized_keys@']);
    expect(rejected({ threshold: 0.1, MaxSkips: 3 })).toEqual(['unrecognized_keys@']);
  });

  it('rejects out-of-range and mistyped values', () => {
    expect(rejected({ threshold: 0 })).toEqual(['too_small@threshold']);
    expect(rejected({ threshold: -0.1 })).toEqual(['too_small@threshold']);
    expect(rejected({ maxSkips: 0 })).toEqual(['too_small@maxSkips']);
    expect(rejected({ maxSkips: 17 })).toEqual(['too_big@maxSkips']);
    expect(rejected({ maxSkips: 1.5 })).toEqual(['invalid_type@maxSkips']);
    expect(rejected({ warmupSteps: 1 })).toEqual(['too_small@warmupSteps']);
    expect(rejected({ finalSteps: -1 })).toEqual(['too_small@finalSteps']);
    expect(rejected({ outlierRatio: 0 })).toEqual(['too_small@outlierRatio']);
    expect(rejected({ purify: 'yes' })).toEqual(['invalid_type@purify']);
    expect(rejected({ purifyPrecision: 'int8' })).toEqual(['invalid_value@purifyPrecision']);
    expect(rejected({ threshold: '0.1' })).toEqual(['invalid_type@threshold']);
  });
});
