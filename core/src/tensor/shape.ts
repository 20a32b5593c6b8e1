import { SlipstreamError } from '../errors/index.js';

/** Dimensions the native ABI accepts (SLIP_MAX_DIMS in slipstream.h). */
export const MAX_NATIVE_DIMS = 8;

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  return String(value);
}

/**
 * Checks that `shape` is an array of non-negative safe integers whose product is a safe
 * integer, and returns a frozen copy. `where` names the value in messages ("shape",
 * "model.safetensors: tensor 'w'.shape", ...).
 */
export function validateShape(shape: unknown, where = 'shape'): readonly number[] {
  if (!Array.isArray(shape)) {
    throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected an array of non-negative integers for ${where}, got ${describe(shape)}`);
  }
  const dims: number[] = [];
  let numel = 1;
  for (let i = 0; i < shape.length; i++) {
    const d: unknown = shape[i];
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected a non-negative integer for ${where}[${i}], got ${describe(d)}`);
    }
    numel *= d;
    dims.push(d);
  }
  if (!Number.isSafeInteger(numel)) {
    throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected ${where} [${dims.join(', ')}] to have at most 2^53-1 elements`);
  }
  return Object.freeze(dims);
}

/** Product of the extents; 1 for a 0-d scalar. Assumes a validated shape. */
export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeToString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
