/**
 * Shared by the TypeScript tests: what a call threw, checked to be a SlipstreamError. Tests
 * import these instead of each writing its own try/catch.
 */
import { expect } from 'vitest';

import { SlipstreamError } from '../core/src/errors/index.js';

/** The SlipstreamError fn throws; fails the test when it throws something else or nothing. */
export function thrown(fn: () => unknown): SlipstreamError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SlipstreamError);
    return e as SlipstreamError;
  }
  throw new Error('expected a throw');
}

/** The code of the SlipstreamError fn throws. */
export function codeOf(fn: () => unknown): string {
  return thrown(fn).code;
}
