import { describe, expect, it } from 'vitest';
import { SlipstreamError } from '../errors/index.js';
import { findDuplicateKey } from './json-duplicates.js';
import { SafetensorsReader } from './reader.js';

/** A file from header text and a data region, with the length prefix set to match. */
function rawFile(header: string | object, data: Uint8Array | number = 0, lengthOverride?: bigint): Uint8Array {
  const text = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + text.byteLength + body.byteLength);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(text.byteLength), true);
  out.set(text, 8);
  out.set(body, 8 + text.byteLength);
  return out;
}

async function failure(bytes: Uint8Array): Promise<string> {
  try {
    const r = await SafetensorsReader.fromBytes(bytes, 'm.safetensors');
    await r.close();
  } catch (e) {
    expect(e).toBeInstanceOf(SlipstreamError);
    expect((e as SlipstreamError).code).toBe('SLIP_E_CORRUPT_FILE');
    return (e as Error).message;
  }
  throw new Error('expected the file to be rejected');
}

const w = (dtype: string, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });

describe('header validation', () => {
  it('accepts a minimal file and an empty header object', async () => {
    const r = await SafetensorsReader.fromBytes(rawFile({ a: w('F32', [2], [0, 8]) }, 8));
    expect(r.names()).toEqual(['a']);
    expect((await SafetensorsReader.fromBytes(rawFile('{}'))).names()).toEqual([]);
  });

  it('rejects bad length prefixes', async () => {
    expect(await failure(new Uint8Array(5))).toBe('m.safetensors: expected at least 8 bytes (the header length), but the file has 5');
    expect(await failure(rawFile('', 0))).toMatch(/header length is 0/);
    expect(await failure(rawFile('{}', 0, 200_000_000n))).toMatch(/header length 200000000 exceeds the 100000000-byte limit/);
    expect(await failure(rawFile('{}', 0, 2n ** 64n - 1n))).toMatch(/exceeds/);
    expect(await failure(rawFile('{}', 0, 3n))).toMatch(/header length 3 goes beyond the end of the file \(10 bytes\)/);
  });

  it('rejects headers that are not a UTF-8 JSON object', async () => {
    const bad = rawFile('{"a":1}');
    bad[10] = 0xff;
    expect(await failure(bad)).toMatch(/not valid UTF-8/);
    expect(await failure(rawFile('{"a":'))).toMatch(/not valid JSON/);
    expect(await failure(rawFile('[1,2]'))).toMatch(/expected the header to be a JSON object, got an array/);
    expect(await failure(rawFile('null'))).toMatch(/got null/);
  });

  it('rejects malformed entries, naming tensor and field', async () => {
    expect(await failure(rawFile({ a: 3 }))).toMatch(/expected tensor "a" to be an object/);
    expect(await failure(rawFile({ a: { dtype: 'F32', shape: [] } }))).toBe('m.safetensors: tensor "a" has no data_offsets');
    expect(await failure(rawFile({ a: { ...w('F32', [1], [0, 4]), extra: 1 } }, 4))).toMatch(/unknown field "extra"/);
    expect(await failure(rawFile({ a: w('BOOL', [1], [0, 1]) }, 1))).toBe(
      'm.safetensors: tensor "a": expected dtype to be one of F32, F16, BF16, F64, F8_E4M3, F8_E5M2, I8, U8, I32, I64, got "BOOL"',
    );
    expect(await failure(rawFile({ a: w('F32', 4, [0, 4]) }, 4))).toMatch(/expected shape to be an array, got 4/);
    expect(await failure(rawFile({ a: w('F32', [2, -1], [0, 4]) }, 4))).toMatch(/expected a non-negative integer for shape\[1\], got -1/);
    expect(await failure(rawFile({ a: w('F32', [1.5], [0, 4]) }, 4))).toMatch(/shape\[0\], got 1.5/);
    expect(await failure(rawFile({ a: w('F32', [2 ** 53], [0, 4]) }, 4))).toMatch(/shape\[0\]/);
    expect(await failure(rawFile({ a: w('F32', [1], [0]) }, 4))).toMatch(/expected data_offsets to be \[begin, end\]/);
    expect(await failure(rawFile({ a: w('F32', [1], ['0', 4]) }, 4))).toMatch(/data_offsets/);
    expect(await failure(rawFile({ a: w('F32', [0], [4, 0]) }, 4))).toMatch(/begin 4 is after end 0/);
    expect(await failure(rawFile({ a: w('F32', [2], [0, 8]) }, 4))).toMatch(/\[0, 8\] go beyond the data region \(4 bytes\)/);
    expect(await failure(rawFile({ a: w('F32', [2], [0, 4]) }, 4))).toBe(
      'm.safetensors: tensor "a": data_offsets [0, 4] hold 4 bytes, but F32 [2] needs 8',
    );
  });

  it('requires the tensors to tile the data region', async () => {
    const overlap = { a: w('U8', [4], [0, 4]), b: w('U8', [4], [2, 6]) };
    expect(await failure(rawFile(overlap, 6))).toMatch(/tensor "b" \[2, 6\] overlaps tensor "a" \[0, 4\]/);
    const gap = { a: w('U8', [2], [0, 2]), b: w('U8', [2], [3, 5]) };
    expect(await failure(rawFile(gap, 5))).toMatch(/1 bytes after tensor "a" belong to no tensor/);
    expect(await failure(rawFile({ a: w('U8', [2], [1, 3]) }, 3))).toMatch(/at the start of the data region/);
    expect(await failure(rawFile({ a: w('U8', [2], [0, 2]) }, 5))).toMatch(/3 bytes after the last tensor/);
    const empty = { e: w('F32', [0, 3], [2, 2]), a: w('U8', [4], [0, 4]) };
    expect(await failure(rawFile(empty, 4))).toMatch(/tensor "e" \[2, 2\] overlaps/);
    const emptyAtEdge = { e: w('F32', [0], [4, 4]), a: w('U8', [4], [0, 4]) };
    expect((await SafetensorsReader.fromBytes(rawFile(emptyAtEdge, 4))).names()).toEqual(['a', 'e']);
  });

  it('detects duplicate keys that JSON.parse would merge', async () => {
    const dupTensor = '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"\\u0061":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}';
    expect(await failure(rawFile(dupTensor, 1))).toBe('m.safetensors: the header has the key "a" twice');
    const dupField = '{"a":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}}';
    expect(await failure(rawFile(dupField, 1))).toBe('m.safetensors: header entry "a" has the key "dtype" twice');
  });

  it('checks __metadata__', async () => {
    expect(await failure(rawFile({ __metadata__: { k: 1 } }))).toMatch(/expected a string for __metadata__."k", got 1/);
    expect(await failure(rawFile({ __metadata__: ['x'] }))).toMatch(/expected __metadata__ to be an object of strings/);
    const ok = await SafetensorsReader.fromBytes(rawFile({ __metadata__: { format: 'pt' } }));
    expect(ok.metadata).toEqual({ format: 'pt' });
    expect((await SafetensorsReader.fromBytes(rawFile({ __metadata__: null }))).metadata).toEqual({});
  });

  it('keeps "__proto__" as an ordinary tensor name', async () => {
    const r = await SafetensorsReader.fromBytes(rawFile('{"__proto__":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', new Uint8Array([7])));
    expect(r.names()).toEqual(['__proto__']);
    expect((await r.tensor('__proto__')).data[0]).toBe(7);
  });
});

describe('findDuplicateKey', () => {
  it('tracks nesting, arrays and escaped quotes', () => {
    expect(findDuplicateKey('{"a":[{"x":1},{"x":2}],"b":{"c":"\\"","c":1}}')).toEqual({ key: 'c', path: ['b'] });
    expect(findDuplicateKey('{"a":"{\\"a\\":1}","b":[1,{"a":1,"b":2}]}')).toBeNull();
    expect(findDuplicateKey('[{"k":1,"k":2}]')).toEqual({ key: 'k', path: ['[]'] });
  });
});
