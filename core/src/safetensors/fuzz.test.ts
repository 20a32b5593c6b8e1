import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlipstreamError } from '../errors/index.js';
import { DTYPE_INFO } from '../tensor/dtype.js';
import { Tensor } from '../tensor/tensor.js';
import { SafetensorsReader } from './reader.js';
import { writeSafetensors } from './writer.js';

/**
 * Every damaged variant of a valid file must either read back consistently or fail with
 * SLIP_E_CORRUPT_FILE: no other exception type, no crash, no hang. Variants are generated from
 * a fixed seed so that a failure reproduces.
 */

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Variant {
  label: string;
  bytes: Uint8Array;
}

let dir: string;
let valid: Uint8Array;
let headerLength: number;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'slip-fuzz-'));
  const path = join(dir, 'valid.safetensors');
  await writeSafetensors(
    path,
    {
      'layer.0.weight': Tensor.fromArray('BF16', [4, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
      'layer.0.scale': Tensor.fromArray('F8_E4M3', [3], [0.5, 1, 2]),
      'layer.1.q': Tensor.fromArray('I8', [2, 2], [-1, 2, -3, 4]),
      bias: Tensor.fromArray('F32', [3], [0.25, -0.5, 1]),
      step: Tensor.fromArray('I64', [], [42n]),
      empty: Tensor.zeros('F16', [0, 5]),
    },
    { format: 'pt', origin: 'fuzz' },
  );
  valid = new Uint8Array(await readFile(path));
  headerLength = Number(new DataView(valid.buffer).getBigUint64(0, true));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function withHeader(header: string, data: Uint8Array, lengthOverride?: bigint): Uint8Array {
  const text = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + text.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(text.byteLength), true);
  out.set(text, 8);
  out.set(data, 8 + text.byteLength);
  return out;
}

function variants(rand: () => number): Variant[] {
  const out: Variant[] = [];
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const int = (n: number): number => Math.floor(rand() * n);
  const headerText = new TextDecoder().decode(valid.subarray(8, 8 + headerLength));
  const data = valid.subarray(8 + headerLength);

  // Truncation at every length.
  for (let n = 0; n < valid.byteLength; n++) out.push({ label: `truncate to ${n}`, bytes: valid.slice(0, n) });

  // Byte flips in the length prefix, header and data.
  const regions: [string, number, number, number][] = [
    ['prefix', 0, 8, 120],
    ['header', 8, 8 + headerLength, 300],
    ['data', 8 + headerLength, valid.byteLength, 120],
  ];
  for (const [name, lo, hi, count] of regions) {
    for (let k = 0; k < count; k++) {
      const bytes = valid.slice();
      const flips = 1 + int(3);
      for (let f = 0; f < flips; f++) bytes[lo + int(hi - lo)] = int(256);
      out.push({ label: `${name} flip #${k}`, bytes });
    }
  }

  // Structured edits of the header JSON, re-encoded with a matching length prefix.
  const names = Object.keys(JSON.parse(headerText) as object).filter((n) => n !== '__metadata__');
  const weird: unknown[] = [-1, 1.5, '3', null, 2 ** 53, 2 ** 60, 1e300, [], {}, true, 0];
  const edits: ((h: Record<string, any>) => void)[] = [
    (h) => (h[pick(names)].dtype = pick(['F32', 'F16', 'BF16', 'F64', 'F8_E4M3', 'F8_E5M2', 'I8', 'U8', 'I32', 'I64', 'BOOL', 'f32', 7])),
    (h) => h[pick(names)].shape.push(pick([0, 1, 2, 1000])),
    (h) => h[pick(names)].shape.pop(),
    (h) => {
      const s = h[pick(names)].shape;
      if (s.length > 0) s[int(s.length)] = pick(weird);
    },
    (h) => (h[pick(names)].shape = pick(weird)),
    (h) => (h[pick(names)].data_offsets[int(2)] += int(9) - 4),
    (h) => (h[pick(names)].data_offsets[int(2)] = pick(weird)),
    (h) => h[pick(names)].data_offsets.reverse(),
    (h) => (h[pick(names)].data_offsets = pick([[0], [0, 1, 2], 'x', null])),
    (h) => {
      const [a, b] = [pick(names), pick(names)];
      h[a].data_offsets = [...h[b].data_offsets];
    },
    (h) => delete h[pick(names)][pick(['dtype', 'shape', 'data_offsets'])],
    (h) => (h[pick(names)].extra = 1),
    (h) => delete h[pick(names)],
    (h) => (h[pick(names)] = pick(weird)),
    (h) => (h.__metadata__ = pick([{ a: 1 }, ['x'], 'text', null, { a: 'b' }, 5])),
    (h) => (h.ghost = { dtype: 'U8', shape: [int(4)], data_offsets: [int(60), int(60)] }),
  ];
  for (let k = 0; k < 400; k++) {
    const h = JSON.parse(headerText) as Record<string, any>;
    const count = 1 + int(2);
    for (let e = 0; e < count; e++) {
      try {
        pick(edits)(h);
      } catch {
        // An edit may not apply after an earlier one (e.g. the entry was deleted).
      }
    }
    const dataEdit = int(4);
    const d = dataEdit === 0 ? data.slice(0, Math.max(0, data.byteLength - 1 - int(8))) : dataEdit === 1 ? new Uint8Array([...data, ...new Uint8Array(1 + int(8))]) : data;
    out.push({ label: `json edit #${k}`, bytes: withHeader(JSON.stringify(h), d) });
  }

  // Duplicate keys, spelled so that JSON.parse would quietly keep the last.
  for (const name of names) {
    const entry = JSON.stringify((JSON.parse(headerText) as Record<string, unknown>)[name]);
    const text = headerText.trimEnd().replace(/\}$/, `,${JSON.stringify(name)}:${entry}}`);
    out.push({ label: `duplicate tensor ${name}`, bytes: withHeader(text, data) });
    const field = headerText.replace(`${JSON.stringify(name)}:{`, `${JSON.stringify(name)}:{"dtype":"U8",`);
    out.push({ label: `duplicate dtype in ${name}`, bytes: withHeader(field, data) });
  }

  // Insertions and deletions that shift the header, and absurd length prefixes.
  for (let k = 0; k < 100; k++) {
    const at = int(headerText.length);
    const text = rand() < 0.5 ? headerText.slice(0, at) + headerText.slice(at + 1 + int(4)) : headerText.slice(0, at) + pick(['{', '}', '"', ',', ':', '\\', '[', ']', '0', ' ']) + headerText.slice(at);
    out.push({ label: `shift #${k}`, bytes: withHeader(text, data) });
  }
  for (const n of [0n, 1n, 7n, BigInt(headerLength - 1), BigInt(headerLength + 1), 100_000_000n, 100_000_001n, 2n ** 32n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n]) {
    out.push({ label: `length prefix ${n}`, bytes: withHeader(headerText, data, n) });
  }
  return out;
}

/** Reads every tensor and checks it against the raw bytes and the layout rules. */
async function readAllConsistently(reader: SafetensorsReader, bytes: Uint8Array): Promise<void> {
  const infos = reader.infos();
  let expected = 0;
  for (const info of infos) {
    expect(info.dataOffsets[0]).toBe(expected);
    expected = info.dataOffsets[1];
    const numel = info.shape.reduce((a, b) => a * b, 1);
    expect(info.byteLength).toBe(numel * DTYPE_INFO[info.dtype].size);
    const t = await reader.tensor(info.name);
    const raw = bytes.subarray(reader.dataStart + info.dataOffsets[0], reader.dataStart + info.dataOffsets[1]);
    expect(Buffer.from(t.bytes()).equals(Buffer.from(raw))).toBe(true);
  }
  expect(reader.dataStart + expected).toBe(bytes.byteLength);
}

describe('safetensors fuzz', () => {
  it('reads or rejects with SLIP_E_CORRUPT_FILE every damaged variant', { timeout: 60_000 }, async () => {
    const all = variants(mulberry32(0x51195)); // fixed seed: failures must reproduce
    expect(all.length).toBeGreaterThanOrEqual(1000);
    let accepted = 0;
    let rejected = 0;
    for (let i = 0; i < all.length; i++) {
      const { label, bytes } = all[i];
      // Most variants go through the in-memory source; every 8th goes through a real file.
      const viaFile = i % 8 === 0;
      const path = join(dir, `v${i}.safetensors`);
      if (viaFile) await writeFile(path, bytes);
      let reader: SafetensorsReader | undefined;
      try {
        reader = viaFile ? await SafetensorsReader.open(path) : await SafetensorsReader.fromBytes(bytes, label);
        await readAllConsistently(reader, bytes);
        accepted++;
      } catch (e) {
        if (!(e instanceof SlipstreamError) || e.code !== 'SLIP_E_CORRUPT_FILE') {
          throw new Error(`variant "${label}" (#${i}) threw ${e instanceof SlipstreamError ? e.code : String(e)}: ${(e as Error).message}`);
        }
        expect(e.message.length).toBeGreaterThan(10);
        rejected++;
      } finally {
        await reader?.close();
        if (viaFile) await rm(path);
      }
    }
    // Both outcomes must occur, or the generator has stopped exercising one side.
    expect(accepted).toBeGreaterThan(50);
    expect(rejected).toBeGreaterThan(500);
  });
});
