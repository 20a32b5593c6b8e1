import { describe, expect, it } from 'vitest';

import { referenceCachesManifest } from './manifest.js';

const params = referenceCachesManifest.params;

function rejected(value: unknown): string[] {
  const r = params.safeParse(value);
  expect(r.success, `expected ${JSON.stringify(value)} to be rejected`).toBe(false);
  return r.error!.issues.map((i) => `${i.code}@${i.path.join('.')}`);
}

describe('reference-caches manifest', () => {
  it('names itself and where it runs, frozen', () => {
    expect(referenceCachesManifest.id).toBe('reference-caches');
    expect(referenceCachesManifest.runtimes).toEqual(['embedded']);
    expect(Object.isFrozen(referenceCachesManifest)).toBe(true);
  });

  it('requires method and threshold, and nothing else', () => {
    // (zod reports a missing enum as a value outside it.)
    expect(rejected({})).toEqual(['invalid_value@method', 'invalid_type@threshold']);
    expect(rejected({ method: 'teacache' })).toEqual(['invalid_type@threshold']);
    expect(rejected({ threshold: 0.1 })).toEqual(['invalid_value@method']);
  });

  it('parses the minimal input to the documented defaults: K = 2, warm-up left to the method', () => {
    for (const method of ['teacache', 'first-block-cache', 'magcache', 'easycache'] as const) {
      const out = params.parse({ method, threshold: 0.1 });
      expect(out).toStrictEqual({ method, threshold: 0.1, maxSkips: 2 });
      expect('warmupSteps' in out).toBe(false);
    }
    expect(params.parse({ method: 'magcache', threshold: 0.2, warmupSteps: 1, maxSkips: 1 })).toStrictEqual({ method: 'magcache', threshold: 0.2, warmupSteps: 1, maxSkips: 1 });
  });

  it('rejects unknown keys', () => {
    expect(rejected({ method: 'teacache', threshold: 0.1, coefficients: [1, 2, 3, 4, 5] })).toEqual(['unrecognized_keys@']);
  });

  it('rejects out-of-range and unknown values', () => {
    expect(rejected({ method: 'pab', threshold: 0.1 })).toEqual(['invalid_value@method']);
    expect(rejected({ method: 'teacache', threshold: 0 })).toEqual(['too_small@threshold']);
    expect(rejected({ method: 'teacache', threshold: -1 })).toEqual(['too_small@threshold']);
    expect(rejected({ method: 'teacache', threshold: 0.1, warmupSteps: 0 })).toEqual(['too_small@warmupSteps']);
    expect(rejected({ method: 'teacache', threshold: 0.1, warmupSteps: 2.5 })).toEqual(['invalid_type@warmupSteps']);
    expect(rejected({ method: 'magcache', threshold: 0.1, maxSkips: 0 })).toEqual(['too_small@maxSkips']);
  });
});
