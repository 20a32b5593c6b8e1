import { mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SlipstreamError } from '../errors/index.js';
import { DTYPES, DTYPE_INFO, type DType } from '../tensor/dtype.js';
import { Tensor } from '../tensor/tensor.js';
import { SafetensorsReader, readSafetensors } from './reader.js';
import { SafetensorsWriter, writeSafetensors } from './writer.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'slip-st-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function sample(dtype: DType, shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const info = DTYPE_INFO[dtype];
  const values = Array.from({ length: n }, (_, i) => {
    if (dtype === 'I64') return BigInt(i * 1_000_003 - 7);
    if (info.kind === 'int') return dtype === 'U8' ? i % 256 : (i % 100) - 50;
    return (i - 3) * 0.25;
  });
  return Tensor.fromArray(dtype, shape, values);
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(SlipstreamError);
    return (e as SlipstreamError).code;
  }
  throw new Error('expected a rejection');
}

describe('round trips', () => {
  it('keeps every dtype, shape and value, plus metadata', async () => {
    const path = join(dir, 'all.safetensors');
    const tensors: Record<string, Tensor> = {};
    for (const d of DTYPES) tensors[`t.${d}`] = sample(d, [3, 5]);
    tensors.scalar = sample('F32', []);
    tensors.empty = sample('F16', [0, 4]);
    tensors['nested.name/with spaces'] = sample('U8', [7]);
    await writeSafetensors(path, tensors, { format: 'pt', note: 'ünïcode ✓' });

    const back = await readSafetensors(path);
    expect(back.metadata).toEqual({ format: 'pt', note: 'ünïcode ✓' });
    expect(Object.keys(back.tensors).sort()).toEqual(Object.keys(tensors).sort());
    for (const [name, t] of Object.entries(tensors)) {
      const b = back.tensors[name];
      expect(b.dtype).toBe(t.dtype);
      expect(b.shape).toEqual(t.shape);
      expect(Buffer.from(b.bytes()).equals(Buffer.from(t.bytes()))).toBe(true);
    }
    expect(back.tensors.scalar.numel).toBe(1);
    expect(back.tensors.empty.numel).toBe(0);
  });

  it('lays tensors out by element size, aligned, with an 8-padded header', async () => {
    const path = join(dir, 'layout.safetensors');
    await writeSafetensors(path, { a: sample('U8', [3]), b: sample('F64', [2]), c: sample('F16', [1]), d: sample('I32', [1]) });
    const raw = await readFile(path);
    const n = Number(raw.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    expect(raw.subarray(8, 8 + n).toString('utf8')).toMatch(/^\{"b":.*\} *$/);
    const r = await SafetensorsReader.open(path);
    expect(r.names()).toEqual(['b', 'd', 'c', 'a']);
    for (const info of r.infos()) expect((r.dataStart + info.dataOffsets[0]) % DTYPE_INFO[info.dtype].size).toBe(0);
    await r.close();

    const given = join(dir, 'given.safetensors');
    await writeSafetensors(given, { a: sample('U8', [3]), b: sample('F64', [2]) }, undefined, { order: 'given' });
    const g = await SafetensorsReader.open(given);
    expect(g.names()).toEqual(['a', 'b']);
    expect(Array.from((await g.tensor('b')).data as Float64Array)).toEqual(Array.from(sample('F64', [2]).data as Float64Array));
    await g.close();
  });

  it('streams a tensor in chunks both ways', async () => {
    const path = join(dir, 'chunks.safetensors');
    const big = sample('F32', [1000]);
    const w = await SafetensorsWriter.create(path, [
      { name: 'big', dtype: 'F32', shape: [1000] },
      { name: 'small', dtype: 'I8', shape: [2] },
    ]);
    const bytes = big.bytes();
    await w.write('small', Tensor.fromArray('I8', [2], [1, -1]));
    for (let i = 0; i < bytes.byteLength; i += 999) await w.write('big', bytes.subarray(i, i + 999));
    await w.finish();

    const r = await SafetensorsReader.open(path);
    const parts: Uint8Array[] = [];
    for await (const c of r.chunks('big', 1024)) parts.push(c);
    expect(parts.map((p) => p.byteLength)).toEqual([1024, 1024, 1024, 928]);
    expect(Buffer.concat(parts).equals(Buffer.from(bytes))).toBe(true);
    const seen: string[] = [];
    for await (const [name] of r) seen.push(name);
    expect(seen).toEqual(['big', 'small']);
    await r.close();
    await expect(r.tensor('big')).rejects.toThrow(/reader is closed/);
  });

  it('names what is missing when asked for an unknown tensor', async () => {
    const path = join(dir, 'names.safetensors');
    await writeSafetensors(path, { x: sample('U8', [1]) });
    const r = await SafetensorsReader.open(path);
    expect(() => r.info('y')).toThrow(`${path} has no tensor named "y" (it has 1: "x")`);
    await r.close();
    expect(await codeOf(SafetensorsReader.open(join(dir, 'nope.safetensors')))).toBe('SLIP_E_IO');
  });
});

describe('atomic writes', () => {
  async function leftovers(prefix: string): Promise<string[]> {
    return (await readdir(dir)).filter((f) => f.startsWith(prefix));
  }

  it('removes the temp file when a tensor gets too many bytes', async () => {
    const w = await SafetensorsWriter.create(join(dir, 'over.safetensors'), [{ name: 'a', dtype: 'F32', shape: [2] }]);
    expect(await leftovers('over.safetensors.tmp-')).toHaveLength(1);
    await expect(w.write('a', new Uint8Array(12))).rejects.toThrow(/takes 8 bytes, but 12 were written/);
    expect(await leftovers('over.safetensors')).toEqual([]);
    await expect(w.write('a', new Uint8Array(1))).rejects.toThrow(/already aborted/);
  });

  it('leaves no file when tensors are incomplete or mismatched', async () => {
    const specs = [{ name: 'a', dtype: 'F32' as const, shape: [2] }];
    const w1 = await SafetensorsWriter.create(join(dir, 'short.safetensors'), specs);
    await w1.write('a', new Uint8Array(4));
    await expect(w1.finish()).rejects.toThrow(/incomplete tensors: "a" \(4 of 8 bytes\)/);
    const w2 = await SafetensorsWriter.create(join(dir, 'dtype.safetensors'), specs);
    expect(await codeOf(w2.writeTensor('a', sample('F16', [2])))).toBe('SLIP_E_DTYPE_MISMATCH');
    const w3 = await SafetensorsWriter.create(join(dir, 'shape.safetensors'), specs);
    expect(await codeOf(w3.writeTensor('a', sample('F32', [1, 2])))).toBe('SLIP_E_SHAPE_MISMATCH');
    expect(await leftovers('short.')).toEqual([]);
    expect(await leftovers('dtype.')).toEqual([]);
    expect(await leftovers('shape.')).toEqual([]);
  });

  it('keeps the previous file until the new one is complete', async () => {
    const path = join(dir, 'keep.safetensors');
    await writeFile(path, 'old');
    const w = await SafetensorsWriter.create(path, [{ name: 'a', dtype: 'U8', shape: [1] }]);
    await w.write('a', new Uint8Array([9]));
    expect(await readFile(path, 'utf8')).toBe('old');
    await w.finish();
    expect((await readSafetensors(path)).tensors.a.data[0]).toBe(9);
    expect(await leftovers('keep.safetensors.tmp')).toEqual([]);
  });

  it('rejects bad specs before creating anything', async () => {
    const path = join(dir, 'specs.safetensors');
    await expect(SafetensorsWriter.create(path, [{ name: '__metadata__', dtype: 'U8', shape: [] }])).rejects.toThrow(/reserved/);
    await expect(
      SafetensorsWriter.create(path, [
        { name: 'a', dtype: 'U8', shape: [] },
        { name: 'a', dtype: 'U8', shape: [] },
      ]),
    ).rejects.toThrow(/listed twice/);
    await expect(SafetensorsWriter.create(path, [{ name: 'a', dtype: 'U4' as DType, shape: [] }])).rejects.toThrow(/specs\[0\]\.dtype/);
    await expect(SafetensorsWriter.create(path, [{ name: 'a', dtype: 'U8', shape: [-1] }])).rejects.toThrow(/specs\[0\]\.shape\[0\], got -1/);
    await expect(SafetensorsWriter.create(path, [], { metadata: { a: 1 as unknown as string } })).rejects.toThrow(/metadata\.a/);
    expect(await leftovers('specs.')).toEqual([]);
  });
});

describe('large files', () => {
  it('reads only the header and the requested tensor of a 200 MB file', async () => {
    // A sparse file: a 200 MB tensor then a small one; only the small one is read.
    const path = join(dir, 'sparse.safetensors');
    const bigBytes = 200 * 1024 * 1024;
    const header = JSON.stringify({
      big: { dtype: 'U8', shape: [bigBytes], data_offsets: [0, bigBytes] },
      tail: { dtype: 'F32', shape: [4], data_offsets: [bigBytes, bigBytes + 16] },
    });
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(header.length));
    const fh = await open(path, 'w');
    await fh.write(Buffer.concat([prefix, Buffer.from(header)]), 0);
    await fh.truncate(8 + header.length + bigBytes + 16);
    await fh.write(new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer), 0, 16, 8 + header.length + bigBytes);
    await fh.close();
    expect((await stat(path)).size).toBeGreaterThan(bigBytes);

    const probe = await open(path, 'r');
    const proto = Object.getPrototypeOf(probe) as { read: (...args: unknown[]) => Promise<{ bytesRead: number }> };
    await probe.close();
    const spy = vi.spyOn(proto, 'read');
    try {
      const r = await SafetensorsReader.open(path);
      expect(Array.from((await r.tensor('tail')).data as Float32Array)).toEqual([1, 2, 3, 4]);
      await r.close();
      const results = await Promise.all(spy.mock.results.map((x) => x.value as Promise<{ bytesRead: number }>));
      const total = results.reduce((s, x) => s + x.bytesRead, 0);
      expect(total).toBe(8 + header.length + 16);
    } finally {
      spy.mockRestore();
    }
  });
});
