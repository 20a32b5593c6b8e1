/**
 * The variable-length LZW of GIF image data (GIF89a spec, appendix F): codes are written least
 * significant bit first, start at minCodeSize + 1 bits, widen as the table grows, and never
 * exceed 12 bits. When the table is full a clear code starts it afresh.
 */
import { invalidArgument } from '../../../core/src/errors/index.js';

const MAX_CODES = 4096;

class BitWriter {
  private bytes = new Uint8Array(1024);
  private length = 0;
  private acc = 0;
  private bits = 0;

  write(code: number, width: number): void {
    this.acc |= code << this.bits;
    this.bits += width;
    while (this.bits >= 8) {
      this.push(this.acc & 0xff);
      this.acc >>>= 8;
      this.bits -= 8;
    }
  }

  finish(): Uint8Array {
    if (this.bits > 0) this.push(this.acc & 0xff);
    this.acc = 0;
    this.bits = 0;
    return this.bytes.slice(0, this.length);
  }

  private push(byte: number): void {
    if (this.length === this.bytes.length) {
      const grown = new Uint8Array(this.bytes.length * 2);
      grown.set(this.bytes);
      this.bytes = grown;
    }
    this.bytes[this.length++] = byte;
  }
}

/**
 * LZW-compresses palette indices (each < 2^minCodeSize) into the packed code stream of one GIF
 * image: a clear code first, the end-of-information code last. Sub-blocking is the caller's.
 */
export function lzwEncode(indices: Uint8Array, minCodeSize: number): Uint8Array {
  if (!Number.isInteger(minCodeSize) || minCodeSize < 2 || minCodeSize > 8) throw invalidArgument('minCodeSize', 'an integer in [2, 8]', minCodeSize);
  const clear = 1 << minCodeSize;
  const end = clear + 1;
  const out = new BitWriter();
  // (prefix code << 8 | next index) → code: prefix < 4096, so the key fits in 20 bits.
  const table = new Map<number, number>();
  let next = end + 1;
  let width = minCodeSize + 1;
  out.write(clear, width);
  if (indices.length === 0) {
    out.write(end, width);
    return out.finish();
  }
  let prefix = indices[0]!;
  if (prefix >= clear) throw invalidArgument('indices[0]', `a palette index below ${clear}`, prefix);
  for (let i = 1; i < indices.length; i += 1) {
    const k = indices[i]!;
    if (k >= clear) throw invalidArgument(`indices[${i}]`, `a palette index below ${clear}`, k);
    const key = (prefix << 8) | k;
    const known = table.get(key);
    if (known !== undefined) {
      prefix = known;
      continue;
    }
    out.write(prefix, width);
    table.set(key, next);
    next += 1;
    // The decoder adds each entry one code later than we do, so it widens only after reading
    // the code that follows; widening once `next` passes 2^width keeps the two in step.
    if (next > 1 << width && width < 12) width += 1;
    if (next === MAX_CODES) {
      // Clear as soon as the table is full (code 4095 is then never used) rather than relying on
      // the decoder to handle a full table, which some decoders get wrong.
      out.write(clear, width);
      table.clear();
      next = end + 1;
      width = minCodeSize + 1;
    }
    prefix = k;
  }
  out.write(prefix, width);
  // After the last code the decoder's table has caught up with ours, and it widens as soon as the
  // table reaches 2^width entries (it has no lag to wait for), so the end code may go one wider.
  if (next + 1 > 1 << width && width < 12) width += 1;
  out.write(end, width);
  return out.finish();
}
