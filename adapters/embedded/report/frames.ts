/** Checks on RGB frame lists and the side-by-side composition the report's GIFs show. */
import { SlipstreamError, invalidArgument } from '../../../core/src/errors/index.js';

/** The colour of the column between the two videos: mid grey reads as "not part of either". */
export const GAP_RGB: readonly [number, number, number] = [128, 128, 128];

export function checkSize(name: string, value: number, max = 65535): void {
  if (!Number.isInteger(value) || value < 1 || value > max) throw invalidArgument(name, `an integer in [1, ${max}]`, value);
}

/** Throws unless `frames` is a non-empty list of width × height × 3 byte RGB frames. */
export function checkFrames(frames: readonly Uint8Array[], width: number, height: number, name = 'frames'): void {
  checkSize('width', width);
  checkSize('height', height);
  if (!Array.isArray(frames) || frames.length === 0) throw invalidArgument(name, 'a non-empty array of RGB frames', frames);
  const bytes = width * height * 3;
  frames.forEach((f, i) => {
    if (!(f instanceof Uint8Array)) throw invalidArgument(`${name}[${i}]`, 'a Uint8Array of RGB bytes', f);
    if (f.length !== bytes)
      throw new SlipstreamError('SLIP_E_SHAPE_MISMATCH', `expected ${bytes} bytes (${width}×${height}×3 RGB) for ${name}[${i}], got ${f.length}`);
  });
}

/**
 * Frame i of `a` left of frame i of `b`, a `gap`-pixel column of GAP_RGB between them, so that
 * one GIF plays both videos in lockstep.
 */
export function sideBySide(
  a: Uint8Array[],
  b: Uint8Array[],
  width: number,
  height: number,
  gap = 2,
): { frames: Uint8Array[]; width: number; height: number } {
  checkFrames(a, width, height, 'a');
  checkFrames(b, width, height, 'b');
  if (a.length !== b.length)
    throw new SlipstreamError('SLIP_E_SHAPE_MISMATCH', `expected as many frames in b as in a (${a.length}), got ${b.length}`);
  if (!Number.isInteger(gap) || gap < 0) throw invalidArgument('gap', 'a non-negative integer', gap);
  const total = 2 * width + gap;
  checkSize('combined width (2 × width + gap)', total);
  const row = width * 3;
  const frames = a.map((left, i) => {
    const right = b[i]!;
    const out = new Uint8Array(total * height * 3);
    for (let y = 0; y < height; y += 1) {
      const o = y * total * 3;
      out.set(left.subarray(y * row, (y + 1) * row), o);
      for (let x = 0; x < gap; x += 1) out.set(GAP_RGB, o + row + x * 3);
      out.set(right.subarray(y * row, (y + 1) * row), o + row + gap * 3);
    }
    return out;
  });
  return { frames, width: total, height };
}

/** The frames of a video end to end, for metrics over the whole video. */
export function concatFrames(frames: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let o = 0;
  for (const f of frames) {
    out.set(f, o);
    o += f.length;
  }
  return out;
}
