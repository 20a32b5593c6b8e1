/**
 * Animated GIF89a writer for the report: one global palette for the whole video (see
 * palette.ts), every frame a full image, an optional NETSCAPE2.0 block for endless looping and an
 * integer nearest-neighbour upscale, because browsers blur small images when they enlarge them.
 */
import { invalidArgument } from '../../../core/src/errors/index.js';
import { checkFrames, checkSize } from './frames.js';
import { lzwEncode } from './lzw.js';
import { quantize } from './palette.js';

export { GAP_RGB, sideBySide } from './frames.js';

export interface GifOptions {
  /**
   * Time each frame stays on screen; stored in hundredths of a second, rounded. Browsers show
   * delays under 20 ms as 100 ms, so faster animations play slower, not faster.
   */
  delayMs: number;
  /** Repeat forever (NETSCAPE2.0 extension); default true. False plays once. */
  loop?: boolean;
  /** Integer nearest-neighbour upscale factor; default 1. */
  scale?: number;
}

class ByteWriter {
  private readonly parts: Uint8Array[] = [];

  bytes(...values: number[]): void {
    this.parts.push(Uint8Array.from(values));
  }

  u16(value: number): void {
    this.bytes(value & 0xff, value >>> 8);
  }

  ascii(text: string): void {
    this.parts.push(Uint8Array.from(text, (ch) => ch.charCodeAt(0)));
  }

  raw(data: Uint8Array): void {
    this.parts.push(data);
  }

  /** Data sub-blocks: at most 255 bytes each behind a length byte, then a zero-length block. */
  subBlocks(data: Uint8Array): void {
    for (let i = 0; i < data.length; i += 255) {
      const n = Math.min(255, data.length - i);
      this.bytes(n);
      this.parts.push(data.subarray(i, i + n));
    }
    this.bytes(0);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

function upscale(indices: Uint8Array, width: number, height: number, scale: number): Uint8Array {
  if (scale === 1) return indices;
  const w = width * scale;
  const out = new Uint8Array(w * height * scale);
  for (let y = 0; y < height; y += 1) {
    const row = out.subarray(y * scale * w, (y * scale + 1) * w);
    for (let x = 0; x < width; x += 1) row.fill(indices[y * width + x]!, x * scale, (x + 1) * scale);
    for (let r = 1; r < scale; r += 1) out.copyWithin((y * scale + r) * w, y * scale * w, (y * scale + 1) * w);
  }
  return out;
}

/** frames: RGB bytes, width × height × 3 each, row-major. Returns the bytes of a .gif file. */
export function encodeGif(frames: Uint8Array[], width: number, height: number, options: GifOptions): Uint8Array {
  checkFrames(frames, width, height);
  const { delayMs, loop = true, scale = 1 } = options ?? ({} as GifOptions);
  if (!Number.isFinite(delayMs) || delayMs < 0 || Math.round(delayMs / 10) > 0xffff)
    throw invalidArgument('options.delayMs', 'a finite number of milliseconds in [0, 655350]', delayMs);
  if (typeof loop !== 'boolean') throw invalidArgument('options.loop', 'a boolean', loop);
  if (!Number.isInteger(scale) || scale < 1) throw invalidArgument('options.scale', 'a positive integer', scale);
  const w = width * scale;
  const h = height * scale;
  checkSize('width × options.scale', w);
  checkSize('height × options.scale', h);

  const { palette, indices } = quantize(frames, 256);
  // The colour table holds 2^bits entries (2 at least); LZW codes start from 2 bits at least.
  const bits = Math.max(1, Math.ceil(Math.log2(palette.length / 3)));
  const table = new Uint8Array(3 << bits);
  table.set(palette);
  const minCodeSize = Math.max(2, bits);

  const out = new ByteWriter();
  out.ascii('GIF89a');
  out.u16(w);
  out.u16(h);
  // Global colour table present, 8 bits per primary, unsorted, 2^bits entries.
  out.bytes(0x80 | (7 << 4) | (bits - 1), 0, 0);
  out.raw(table);
  if (loop) {
    out.bytes(0x21, 0xff, 11);
    out.ascii('NETSCAPE2.0');
    out.bytes(3, 1);
    out.u16(0); // repeat count 0: forever
    out.bytes(0);
  }
  const delay = Math.round(delayMs / 10);
  for (const frame of indices) {
    // Graphic control: disposal 1 (leave in place; every frame covers the screen anyway), no
    // transparency.
    out.bytes(0x21, 0xf9, 4, 1 << 2);
    out.u16(delay);
    out.bytes(0, 0);
    out.bytes(0x2c);
    out.u16(0);
    out.u16(0);
    out.u16(w);
    out.u16(h);
    out.bytes(0); // no local colour table, not interlaced
    out.bytes(minCodeSize);
    out.subBlocks(lzwEncode(upscale(frame, width, height, scale), minCodeSize));
  }
  out.bytes(0x3b);
  return out.finish();
}
