import { inflateSync } from 'node:zlib';

import { describe, expect, it } from 'vitest';

import { encodePng } from './png.js';
import { LatentCodec, PromptTable, stripRow } from './wan-mini.js';

describe('wan-mini assets on the embedded side', () => {
  it('builds contexts from the word table, zero rows after the words, and refuses unknown words', async () => {
    const table = await PromptTable.load();
    const c = table.context('red circle right');
    expect(c.shape).toEqual([1, 8, 4096]);
    const red = table.context('red');
    expect([...c.data.subarray(0, 4096)]).toEqual([...red.data.subarray(0, 4096)]);
    expect(c.data.subarray(3 * 4096).every((v) => v === 0)).toBe(true);
    expect(table.context('').data.every((v) => v === 0)).toBe(true);
    expect(() => table.context('purple circle right')).toThrowError(/expected prompt words from .*"purple"/);
  });

  it('decodes a zero latent to the mean patch of the codec', async () => {
    const codec = await LatentCodec.load();
    const frames = codec.decode(new Float32Array(16 * 1 * 2 * 2), 1, 2, 2);
    expect(frames).toHaveLength(1);
    expect(frames[0]!.length).toBe(8 * 8 * 3);
    // Every 4x4 patch is the same (the mean), so pixel (0,0) equals pixel (4,4).
    expect([...frames[0]!.subarray(0, 3)]).toEqual([...frames[0]!.subarray((4 * 8 + 4) * 3, (4 * 8 + 4) * 3 + 3)]);
  });

  it('writes PNGs whose pixel data inflates back to the image', () => {
    const rgb = Uint8Array.from({ length: 5 * 3 * 3 }, (_, i) => i * 7);
    const png = encodePng(5, 3, rgb);
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const idat = png.indexOf('IDAT');
    const length = png.readUInt32BE(idat - 4);
    const raw = inflateSync(png.subarray(idat + 4, idat + 4 + length));
    for (let y = 0; y < 3; y += 1) expect([...raw.subarray(y * 16 + 1, y * 16 + 16)]).toEqual([...rgb.subarray(y * 15, y * 15 + 15)]);
    const strip = stripRow([new Uint8Array(2 * 2 * 3).fill(1), new Uint8Array(2 * 2 * 3).fill(2)], 2, 2);
    expect(strip.width).toBe(6);
  });
});
