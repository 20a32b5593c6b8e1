import { SlipstreamError } from '../errors/index.js';
import { DTYPES, DTYPE_INFO, isDType, type DType } from '../tensor/dtype.js';
import { findDuplicateKey } from './json-duplicates.js';

/** Same limit as the reference implementation: larger headers are refused before reading. */
export const MAX_HEADER_BYTES = 100_000_000;
export const METADATA_KEY = '__metadata__';

export interface TensorInfo {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** [begin, end) relative to the start of the data region. */
  readonly dataOffsets: readonly [number, number];
  readonly byteLength: number;
}

export interface ParsedHeader {
  /** Sorted by data offset. */
  readonly tensors: readonly TensorInfo[];
  readonly metadata: Readonly<Record<string, string>>;
}

function corrupt(file: string, message: string): SlipstreamError {
  return new SlipstreamError('SLIP_E_CORRUPT_FILE', `${file}: ${message}`);
}

function show(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) return String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function quote(name: string): string {
  return JSON.stringify(name);
}

/**
 * Reads the 8-byte little-endian header length and checks it against the file size.
 * Returns N, the header's byte length.
 */
export function parseHeaderLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8 || prefix.byteLength < 8) {
    throw corrupt(file, `expected at least 8 bytes (the header length), but the file has ${fileSize}`);
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n === 0n) throw corrupt(file, 'header length is 0; expected a JSON object of at least 2 bytes');
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw corrupt(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit; the length prefix is probably corrupt`);
  }
  const length = Number(n);
  if (8 + length > fileSize) {
    throw corrupt(file, `header length ${length} goes beyond the end of the file (${fileSize} bytes)`);
  }
  return length;
}

function decodeHeaderText(bytes: Uint8Array, file: string): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw corrupt(file, 'header is not valid UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw corrupt(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw corrupt(file, `expected the header to be a JSON object, got ${Array.isArray(value) ? 'an array' : show(value)}`);
  }
  const dup = findDuplicateKey(text);
  if (dup !== null) {
    const where = dup.path.length === 0 ? 'the header' : `header entry ${dup.path.map(quote).join('.')}`;
    throw corrupt(file, `${where} has the key ${quote(dup.key)} twice`);
  }
  return value as Record<string, unknown>;
}

function parseMetadata(value: unknown, file: string): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  // The reference reader treats null like an absent map; so do we.
  if (value === undefined || value === null) return out;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw corrupt(file, `expected ${METADATA_KEY} to be an object of strings, got ${show(value)}`);
  }
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw corrupt(file, `expected a string for ${METADATA_KEY}.${quote(k)}, got ${show(v)}`);
    out[k] = v;
  }
  return out;
}

function isSafeIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function parseEntry(name: string, value: unknown, dataLength: number, file: string): TensorInfo {
  const where = `tensor ${quote(name)}`;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw corrupt(file, `expected ${where} to be an object with dtype, shape and data_offsets, got ${show(value)}`);
  }
  const entry = value as Record<string, unknown>;
  for (const key of ['dtype', 'shape', 'data_offsets']) {
    if (!Object.hasOwn(entry, key)) throw corrupt(file, `${where} has no ${key}`);
  }
  for (const key of Object.keys(entry)) {
    // The format defines exactly these three fields; anything else is a writer bug or damage.
    if (key !== 'dtype' && key !== 'shape' && key !== 'data_offsets') {
      throw corrupt(file, `${where} has an unknown field ${quote(key)}; expected only dtype, shape and data_offsets`);
    }
  }
  const { dtype, shape, data_offsets: offsets } = entry;
  if (!isDType(dtype)) {
    throw corrupt(file, `${where}: expected dtype to be one of ${DTYPES.join(', ')}, got ${show(dtype)}`);
  }
  if (!Array.isArray(shape)) throw corrupt(file, `${where}: expected shape to be an array, got ${show(shape)}`);
  let numel = 1;
  shape.forEach((d: unknown, i) => {
    if (!isSafeIndex(d)) throw corrupt(file, `${where}: expected a non-negative integer for shape[${i}], got ${show(d)}`);
    numel *= d;
  });
  const byteLength = numel * DTYPE_INFO[dtype].size;
  if (!Number.isSafeInteger(byteLength)) {
    throw corrupt(file, `${where}: shape ${show(shape)} is too large (more than 2^53 bytes)`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !isSafeIndex(offsets[0]) || !isSafeIndex(offsets[1])) {
    throw corrupt(file, `${where}: expected data_offsets to be [begin, end] with non-negative integers, got ${show(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw corrupt(file, `${where}: data_offsets begin ${begin} is after end ${end}`);
  if (end > dataLength) {
    throw corrupt(file, `${where}: data_offsets [${begin}, ${end}] go beyond the data region (${dataLength} bytes); the file may be truncated`);
  }
  if (end - begin !== byteLength) {
    throw corrupt(
      file,
      `${where}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${dtype} ${show(shape)} needs ${byteLength}`,
    );
  }
  return Object.freeze({
    name,
    dtype,
    shape: Object.freeze([...(shape as number[])]),
    dataOffsets: Object.freeze([begin, end] as [number, number]),
    byteLength,
  });
}

/**
 * Parses and validates the header. `dataLength` is the size of the data region (file size
 * minus 8 minus the header length).
 */
export function parseHeader(bytes: Uint8Array, dataLength: number, file: string): ParsedHeader {
  const json = decodeHeaderText(bytes, file);
  const metadata = parseMetadata(json[METADATA_KEY], file);
  const tensors: TensorInfo[] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === METADATA_KEY) continue;
    tensors.push(parseEntry(name, value, dataLength, file));
  }
  tensors.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1] || (a.name < b.name ? -1 : 1));

  // Like the reference reader, require the tensors to tile the data region exactly: no
  // overlaps (two names for one memory would alias), no holes and no trailing bytes (either
  // means the header and data disagree, e.g. a header from another file).
  let expected = 0;
  let previous: TensorInfo | undefined;
  for (const t of tensors) {
    const [begin, end] = t.dataOffsets;
    if (begin < expected) {
      throw corrupt(file, `tensor ${quote(t.name)} [${begin}, ${end}] overlaps tensor ${quote(previous!.name)} [${previous!.dataOffsets.join(', ')}]`);
    }
    if (begin > expected) {
      const after = previous === undefined ? 'at the start of the data region' : `after tensor ${quote(previous.name)}`;
      throw corrupt(file, `${begin - expected} bytes ${after} belong to no tensor; expected tensors to cover the data region without gaps`);
    }
    expected = end;
    previous = t;
  }
  if (expected !== dataLength) {
    throw corrupt(file, `${dataLength - expected} bytes after the last tensor belong to no tensor; expected the data region to end at byte ${expected}`);
  }
  return { tensors, metadata: Object.freeze(metadata) };
}
