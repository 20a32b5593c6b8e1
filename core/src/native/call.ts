import { fromNative } from '../errors/index.js';

/**
 * Runs a native call and rethrows its error as a SlipstreamError whose stack is the caller's
 * (captured before the call), so users see their own line.
 */
export function callNative<T>(body: () => T): T {
  const site = new Error();
  try {
    return body();
  } catch (err) {
    throw fromNative(err, site);
  }
}

export async function callNativeAsync<T>(body: () => Promise<T>): Promise<T> {
  const site = new Error();
  try {
    return await body();
  } catch (err) {
    throw fromNative(err, site);
  }
}
