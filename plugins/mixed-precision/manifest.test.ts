import { describe, expect, it } from 'vitest';

import { mixedPrecisionManifest } from './manifest.js';

const params = mixedPrecisionManifest.params;

function rejected(value: unknown): string[] {
  const r = params.safeParse(value);
  expect(r.success, `expected ${JSON.stringify(value)} to be rejected`).toBe(false);
  return r.error!.issues.map((i) => `${i.code}@${i.path.join('.')}`);
}

describe('mixed-precision manifest', () => {
  it('names itself and where it runs, frozen', () => {
    expect(mixedPrecisionManifest.id).toBe('mixed-precision');
    expect(mixedPrecisionManifest.runtimes).toEqual(['embedded', 'comfyui']);
    expect(mixedPrecisionManifest.source).toMatch(/DMPQ/);
    expect(Object.isFrozen(mixedPrecisionManifest)).toBe(true);
  });

  it('parses {} to the documented defaults: route dmpq, Hadamard 128, no threshold of its own', () => {
    const out = params.parse({});
    expect(out).toStrictEqual({ route: 'dmpq', hadamardBlock: 128 });
    expect('gammaThreshold' in out).toBe(false);
  });

  it('accepts every route, every Hadamard block and a threshold of 0', () => {
    for (const route of ['dmpq', 'int8', 'nvfp4', 'full'] as const) expect(params.parse({ route }).route).toBe(route);
    for (const hadamardBlock of [0, 16, 32, 64, 128, 256] as const) expect(params.parse({ hadamardBlock }).hadamardBlock).toBe(hadamardBlock);
    expect(params.parse({ gammaThreshold: 0 })).toStrictEqual({ route: 'dmpq', gammaThreshold: 0, hadamardBlock: 128 });
  });

  it('rejects unknown keys', () => {
    expect(rejected({ threshold: 0.1 })).toEqual(['unrecognized_keys@']);
  });

  it('rejects out-of-range and unknown values', () => {
    expect(rejected({ route: 'fp8' })).toEqual(['invalid_value@route']);
    expect(rejected({ route: 'INT8' })).toEqual(['invalid_value@route']);
    expect(rejected({ gammaThreshold: -0.01 })).toEqual(['too_small@gammaThreshold']);
    expect(rejected({ hadamardBlock: 48 })).toEqual(['invalid_value@hadamardBlock']);
    expect(rejected({ hadamardBlock: 512 })).toEqual(['invalid_value@hadamardBlock']);
    expect(rejected({ hadamardBlock: '128' })).toEqual(['invalid_value@hadamardBlock']);
  });
});
