import { describe, expect, it } from 'vitest';

import { maxAbsError } from '../../../core/src/metrics/index.js';
import { GAP_RGB, encodeGif, sideBySide } from './gif.js';
import { codeOf } from '../../../test/errors.js';

/*
 * An independent GIF reader, written from the GIF89a specification for these tests, so that the
 * encoder is checked against the format rather than against itself. It is strict where the
 * encoder should be: unknown blocks, codes beyond the table and trailing bytes all throw.
 */

interface DecodedFrame {
  delayCs: number;
  disposal: number;
  transparent: boolean;
  left: number;
  top: number;
  width: number;
  height: number;
  minCodeSize: number;
  indices: Uint8Array;
  /** Clear codes in the LZW stream, the leading one included. */
  clears: number;
  /** Widest code read. */
  maxWidth: number;
}

interface DecodedGif {
  width: number;
  height: number;
  /** The whole global colour table, RGB triples. */
  table: Uint8Array;
  /** The NETSCAPE2.0 repeat count (0 = forever), or null without the extension. */
  loopCount: number | null;
  frames: DecodedFrame[];
}

function lzwDecode(data: Uint8Array, minCodeSize: number, pixels: number): { indices: Uint8Array; clears: number; maxWidth: number } {
  const clear = 1 << minCodeSize;
  const end = clear + 1;
  const prefix = new Int32Array(4096);
  const suffix = new Uint8Array(4096);
  for (let i = 0; i < clear; i += 1) {
    prefix[i] = -1;
    suffix[i] = i;
  }
  const out: number[] = [];
  const emit = (code: number): number => {
    const s: number[] = [];
    for (let c = code; c >= 0; c = prefix[c]!) s.push(suffix[c]!);
    s.reverse();
    out.push(...s);
    return s[0]!;
  };
  let bitPos = 0;
  const read = (width: number): number => {
    if (bitPos + width > data.length * 8) throw new Error(`LZW data ends inside a code at bit ${bitPos}`);
    let v = 0;
    for (let b = 0; b < width; b += 1, bitPos += 1) v |= ((data[bitPos >> 3]! >> (bitPos & 7)) & 1) << b;
    return v;
  };
  let width = minCodeSize + 1;
  let next = end + 1;
  let prev = -1;
  let clears = 0;
  let maxWidth = width;
  for (;;) {
    maxWidth = Math.max(maxWidth, width);
    const code = read(width);
    if (code === clear) {
      clears += 1;
      width = minCodeSize + 1;
      next = end + 1;
      prev = -1;
      continue;
    }
    if (code === end) break;
    if (prev < 0) {
      if (code >= clear) throw new Error(`first code after a clear is ${code}, not a literal`);
      emit(code);
      prev = code;
      continue;
    }
    let first: number;
    if (code < next) {
      if (code > end || code < clear) first = emit(code);
      else throw new Error(`unexpected control code ${code}`);
    } else if (code === next) {
      // The entry being defined by this very code: prev's string and its own first index.
      first = emit(prev);
      out.push(first);
    } else throw new Error(`code ${code} is beyond the table (next ${next})`);
    if (next < 4096) {
      prefix[next] = prev;
      suffix[next] = first;
      next += 1;
      if (next === 1 << width && width < 12) width += 1;
    }
    prev = code;
  }
  if (clears === 0) throw new Error('LZW stream does not start with a clear code');
  if (Math.ceil(bitPos / 8) !== data.length) throw new Error(`${data.length - Math.ceil(bitPos / 8)} bytes after the end code`);
  if (out.length !== pixels) throw new Error(`decoded ${out.length} indices for ${pixels} pixels`);
  return { indices: Uint8Array.from(out), clears, maxWidth };
}

function decodeGif(bytes: Uint8Array): DecodedGif {
  let p = 0;
  const u8 = () => {
    if (p >= bytes.length) throw new Error('unexpected end of file');
    return bytes[p++]!;
  };
  const u16 = () => u8() | (u8() << 8);
  const text = (n: number) => String.fromCharCode(...Array.from({ length: n }, u8));
  const subBlocks = (): Uint8Array => {
    const parts: number[] = [];
    for (let n = u8(); n > 0; n = u8()) for (let i = 0; i < n; i += 1) parts.push(u8());
    return Uint8Array.from(parts);
  };
  if (text(6) !== 'GIF89a') throw new Error('not GIF89a');
  const width = u16();
  const height = u16();
  const packed = u8();
  u8(); // background
  u8(); // aspect
  if (!(packed & 0x80)) throw new Error('no global colour table');
  const table = bytes.slice(p, p + 3 * (2 << (packed & 7)));
  p += table.length;
  let loopCount: number | null = null;
  const frames: DecodedFrame[] = [];
  let control: { delayCs: number; disposal: number; transparent: boolean } | null = null;
  for (;;) {
    const block = u8();
    if (block === 0x3b) break;
    if (block === 0x21) {
      const label = u8();
      if (label === 0xff) {
        if (u8() !== 11) throw new Error('application extension header is not 11 bytes');
        const id = text(11);
        const data = subBlocks();
        if (id === 'NETSCAPE2.0') {
          if (data.length !== 3 || data[0] !== 1) throw new Error('malformed NETSCAPE2.0 block');
          loopCount = data[1]! | (data[2]! << 8);
        }
      } else if (label === 0xf9) {
        if (u8() !== 4) throw new Error('graphic control block is not 4 bytes');
        const flags = u8();
        const delayCs = u16();
        u8(); // transparent index
        if (u8() !== 0) throw new Error('graphic control block not terminated');
        control = { delayCs, disposal: (flags >> 2) & 7, transparent: (flags & 1) === 1 };
      } else subBlocks();
      continue;
    }
    if (block !== 0x2c) throw new Error(`unknown block 0x${block.toString(16)} at ${p - 1}`);
    const left = u16();
    const top = u16();
    const w = u16();
    const h = u16();
    if (u8() !== 0) throw new Error('local colour table or interlace flag set');
    const minCodeSize = u8();
    const { indices, clears, maxWidth } = lzwDecode(subBlocks(), minCodeSize, w * h);
    if (!control) throw new Error('image without a graphic control extension');
    frames.push({ ...control, left, top, width: w, height: h, minCodeSize, indices, clears, maxWidth });
    control = null;
  }
  if (p !== bytes.length) throw new Error(`${bytes.length - p} bytes after the trailer`);
  return { width, height, table, loopCount, frames };
}

/** The RGB frames a decoder shows: each index replaced by its table colour. */
function rgbOf(gif: DecodedGif): Uint8Array[] {
  return gif.frames.map((f) => {
    const out = new Uint8Array(f.indices.length * 3);
    f.indices.forEach((k, i) => out.set(gif.table.subarray(3 * k, 3 * k + 3), 3 * i));
    return out;
  });
}

/** Where two frame lists first differ, or null; toEqual on large typed arrays takes seconds. */
function firstDifference(got: Uint8Array[], want: Uint8Array[]): string | null {
  if (got.length !== want.length) return `${got.length} frames, expected ${want.length}`;
  for (let f = 0; f < got.length; f += 1) {
    if (got[f]!.length !== want[f]!.length) return `frame ${f}: ${got[f]!.length} bytes, expected ${want[f]!.length}`;
    const i = got[f]!.findIndex((v, j) => v !== want[f]![j]);
    if (i >= 0) return `frame ${f}, pixel ${Math.floor(i / 3)}: [${got[f]!.subarray(i - (i % 3), i - (i % 3) + 3)}], expected [${want[f]!.subarray(i - (i % 3), i - (i % 3) + 3)}]`;
  }
  return null;
}

function distinctColours(frames: Uint8Array[]): number {
  const s = new Set<number>();
  for (const f of frames) for (let i = 0; i < f.length; i += 3) s.add((f[i]! << 16) | (f[i + 1]! << 8) | f[i + 2]!);
  return s.size;
}

/** mulberry32: the same "random" frames on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function frameOf(width: number, height: number, colour: (x: number, y: number) => [number, number, number]): Uint8Array {
  const f = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y += 1) for (let x = 0; x < width; x += 1) f.set(colour(x, y), (y * width + x) * 3);
  return f;
}

describe('encodeGif', () => {
  it('writes an endlessly looping animation whose pixels are exactly the input colours', () => {
    const frames = [0, 1, 2].map((t) =>
      frameOf(5, 3, (x, y) => (x === t ? [255, 0, 0] : y === 1 ? [0, 128, 255] : [20, 20, 20])),
    );
    const gif = decodeGif(encodeGif(frames, 5, 3, { delayMs: 80 }));
    expect([gif.width, gif.height]).toEqual([5, 3]);
    expect(gif.loopCount).toBe(0);
    expect(gif.frames).toHaveLength(3);
    for (const f of gif.frames) {
      expect(f).toMatchObject({ delayCs: 8, disposal: 1, transparent: false, left: 0, top: 0, width: 5, height: 3 });
      expect(f.clears).toBe(1);
    }
    // Three colours: a four-entry table, and LZW's smallest code size (2).
    expect(gif.table.length).toBe(4 * 3);
    expect(gif.frames[0]!.minCodeSize).toBe(2);
    expect(firstDifference(rgbOf(gif), frames)).toBeNull();
  });

  it('leaves the NETSCAPE2.0 block out when loop is false, and rounds the delay to centiseconds', () => {
    const frames = [frameOf(2, 2, () => [1, 2, 3]), frameOf(2, 2, () => [4, 5, 6])];
    const gif = decodeGif(encodeGif(frames, 2, 2, { delayMs: 125, loop: false }));
    expect(gif.loopCount).toBeNull();
    expect(gif.frames.map((f) => f.delayCs)).toEqual([13, 13]);
    expect(firstDifference(rgbOf(gif), frames)).toBeNull();
  });

  it('encodes a single 1×1 frame', () => {
    const frames = [Uint8Array.of(7, 8, 9)];
    const bytes = encodeGif(frames, 1, 1, { delayMs: 100 });
    const gif = decodeGif(bytes);
    expect([gif.width, gif.height, gif.frames.length]).toEqual([1, 1, 1]);
    // One colour still needs a two-entry table (the smallest GIF allows).
    expect(gif.table.length).toBe(2 * 3);
    expect(firstDifference(rgbOf(gif), frames)).toBeNull();
    expect(bytes[bytes.length - 1]).toBe(0x3b);
  });

  it('keeps a frame of exactly 256 colours lossless, with 8-bit codes', () => {
    const frames = [frameOf(16, 16, (x, y) => [x * 17, y * 17, (x * 16 + y) ^ 0x5a])];
    expect(distinctColours(frames)).toBe(256);
    const gif = decodeGif(encodeGif(frames, 16, 16, { delayMs: 40 }));
    expect(gif.table.length).toBe(256 * 3);
    expect(gif.frames[0]!.minCodeSize).toBe(8);
    expect(firstDifference(rgbOf(gif), frames)).toBeNull();
  });

  it('resets the table when it reaches 4096 codes and still decodes exactly', () => {
    // 256 colours scattered at random: almost every pair of pixels starts a new string, so a
    // 128×128 frame fills the 12-bit table several times over.
    const r = rng(7);
    const colours = Array.from({ length: 256 }, (_, i) => [i, 255 - i, (i * 37) & 0xff] as [number, number, number]);
    const pick = (x: number, y: number) => (y < 2 ? y * 128 + x : Math.floor(r() * 256));
    const frames = [0, 1].map(() => frameOf(128, 128, (x, y) => colours[pick(x, y)]!));
    expect(distinctColours(frames)).toBe(256);
    const gif = decodeGif(encodeGif(frames, 128, 128, { delayMs: 50 }));
    for (const f of gif.frames) {
      expect(f.maxWidth).toBe(12);
      expect(f.clears).toBeGreaterThan(2);
    }
    expect(firstDifference(rgbOf(gif), frames)).toBeNull();
  });

  it('compresses long runs (codes that refer to the entry they define) and upscales by whole pixels', () => {
    const flat = [frameOf(64, 64, () => [30, 60, 90])];
    const gif = decodeGif(encodeGif(flat, 64, 64, { delayMs: 100, scale: 4 }));
    expect([gif.width, gif.height]).toEqual([256, 256]);
    expect(firstDifference(rgbOf(gif), [frameOf(256, 256, () => [30, 60, 90])])).toBeNull();

    const small = [frameOf(3, 2, (x, y) => [x * 100, y * 200, 7])];
    const scaled = decodeGif(encodeGif(small, 3, 2, { delayMs: 100, scale: 3 }));
    expect([scaled.width, scaled.height]).toEqual([9, 6]);
    expect(firstDifference(rgbOf(scaled), [frameOf(9, 6, (x, y) => [Math.floor(x / 3) * 100, Math.floor(y / 3) * 200, 7])])).toBeNull();
  });

  it('bounds the error of a 1024-colour lattice by the 2×2 boxes median cut must produce', () => {
    // Colours (8i, 8j, 100) for i, j in 0..31, each on one pixel. Derivation of the bound: the box
    // with the largest squared error is always split on its wider channel, and the least-error
    // cut of 2^k equally spaced, equally weighted values is the middle one, so boxes stay
    // 2^a × 2^b colours with |a - b| ≤ 1. A 2×2 box (squared error 4·2·16 = 128) is never split
    // while a 4×2 box (8·(16 + 80) = 768) or larger remains, and 255 splits of 1024 colours
    // end exactly at 256 boxes of 2×2. Each box's mean is its centre, (8i + 4, 8j + 4, 100), the
    // nearest palette colour to all four of its members, so every pixel is off by exactly 4 in
    // red and green and 0 in blue.
    const frames = [frameOf(32, 32, (x, y) => [8 * x, 8 * y, 100])];
    const gif = decodeGif(encodeGif(frames, 32, 32, { delayMs: 100 }));
    const shown = rgbOf(gif);
    expect(maxAbsError(shown[0]!, frames[0]!)).toBe(4);
    for (let i = 2; i < frames[0]!.length; i += 3) expect(shown[0]![i]).toBe(100);
    expect(distinctColours(shown)).toBe(256);
  });

  it('maps every pixel of a many-coloured video to its nearest palette colour', () => {
    // Smooth gradients plus noise, like the decoder's output: thousands of colours.
    const r = rng(3);
    const frames = [0, 1, 2, 3].map((t) =>
      frameOf(24, 20, (x, y) => [
        Math.min(255, x * 10 + t * 3 + Math.floor(r() * 12)),
        Math.min(255, y * 12 + Math.floor(r() * 12)),
        (x + y) % 7 === 0 ? 240 : Math.floor(r() * 40),
      ]),
    );
    expect(distinctColours(frames)).toBeGreaterThan(256);
    const gif = decodeGif(encodeGif(frames, 24, 20, { delayMs: 100 }));
    expect(gif.table.length).toBe(256 * 3);
    const shown = rgbOf(gif);
    const d2 = (f: Uint8Array, i: number, t: Uint8Array, k: number) => (f[i]! - t[k]!) ** 2 + (f[i + 1]! - t[k + 1]!) ** 2 + (f[i + 2]! - t[k + 2]!) ** 2;
    frames.forEach((f, n) => {
      for (let i = 0; i < f.length; i += 3) {
        let best = Infinity;
        for (let k = 0; k < gif.table.length; k += 3) best = Math.min(best, d2(f, i, gif.table, k));
        expect(d2(f, i, shown[n]!, i)).toBe(best);
      }
    });
  });

  it('gives the same bytes for the same frames', () => {
    const r = rng(11);
    const frames = [frameOf(20, 20, () => [Math.floor(r() * 256), Math.floor(r() * 256), Math.floor(r() * 256)])];
    expect(encodeGif(frames, 20, 20, { delayMs: 100 })).toEqual(encodeGif(frames.map((f) => f.slice()), 20, 20, { delayMs: 100 }));
  });

  it('refuses bad frames and options with clear errors', () => {
    const f = frameOf(2, 2, () => [0, 0, 0]);
    expect(codeOf(() => encodeGif([f, new Uint8Array(11)], 2, 2, { delayMs: 10 }))).toBe('SLIP_E_SHAPE_MISMATCH');
    expect(() => encodeGif([f, new Uint8Array(11)], 2, 2, { delayMs: 10 })).toThrowError(/expected 12 bytes \(2×2×3 RGB\) for frames\[1\], got 11/);
    expect(() => encodeGif([], 2, 2, { delayMs: 10 })).toThrowError(/non-empty array/);
    expect(codeOf(() => encodeGif([f], 1.5, 2, { delayMs: 10 }))).toBe('SLIP_E_INVALID_ARGUMENT');
    expect(() => encodeGif([f], 2, 0, { delayMs: 10 })).toThrowError(/for height, got 0/);
    expect(() => encodeGif([f], 2, 2, { delayMs: -1 })).toThrowError(/options\.delayMs/);
    expect(() => encodeGif([f], 2, 2, { delayMs: Number.NaN })).toThrowError(/options\.delayMs/);
    expect(() => encodeGif([f], 2, 2, { delayMs: 10, scale: 0 })).toThrowError(/options\.scale/);
    expect(() => encodeGif([f], 2, 2, { delayMs: 10, scale: 2.5 })).toThrowError(/options\.scale/);
    expect(() => encodeGif([f], 2, 2, { delayMs: 10, scale: 40000 })).toThrowError(/width × options\.scale/);
    expect(() => encodeGif([[0, 0, 0] as unknown as Uint8Array], 1, 1, { delayMs: 10 })).toThrowError(/Uint8Array/);
  });
});

describe('sideBySide', () => {
  it('puts frame i of a left of frame i of b with a grey gap', () => {
    const a = [frameOf(2, 2, () => [255, 0, 0]), frameOf(2, 2, (x) => [x, 0, 0])];
    const b = [frameOf(2, 2, () => [0, 0, 255]), frameOf(2, 2, (_, y) => [0, 0, y])];
    const out = sideBySide(a, b, 2, 2, 3);
    expect([out.width, out.height, out.frames.length]).toEqual([7, 2, 2]);
    expect(out.frames[1]).toEqual(frameOf(7, 2, (x, y) => (x < 2 ? [x, 0, 0] : x < 5 ? [...GAP_RGB] : [0, 0, y])));
    expect(sideBySide(a, b, 2, 2).width).toBe(6);
    expect(sideBySide(a, b, 2, 2, 0).frames[0]).toEqual(frameOf(4, 2, (x) => (x < 2 ? [255, 0, 0] : [0, 0, 255])));
    // The result feeds the encoder as is.
    const gif = decodeGif(encodeGif(out.frames, out.width, out.height, { delayMs: 100, scale: 2 }));
    expect([gif.width, gif.height]).toEqual([14, 4]);
  });

  it('refuses mismatched videos', () => {
    const f = frameOf(2, 2, () => [0, 0, 0]);
    expect(codeOf(() => sideBySide([f, f], [f], 2, 2))).toBe('SLIP_E_SHAPE_MISMATCH');
    expect(() => sideBySide([f, f], [f], 2, 2)).toThrowError(/as many frames in b as in a \(2\), got 1/);
    expect(() => sideBySide([f], [new Uint8Array(3)], 2, 2)).toThrowError(/for b\[0\], got 3/);
    expect(() => sideBySide([f], [f], 2, 2.5)).toThrowError(/for height/);
    expect(() => sideBySide([f], [f], 2, 2, -1)).toThrowError(/for gap/);
  });
});
