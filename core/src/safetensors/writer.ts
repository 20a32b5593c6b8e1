import { randomBytes } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { SlipstreamError } from '../errors/index.js';
import { DTYPE_INFO, dtypeInfo, type DType } from '../tensor/dtype.js';
import { numelOf, sameShape, shapeToString, validateShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { MAX_HEADER_BYTES, METADATA_KEY } from './header.js';

export interface TensorSpec {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

export interface WriterOptions {
  /** Free-form string map stored under "__metadata__". */
  metadata?: Readonly<Record<string, string>>;
  /**
   * 'aligned' (default): larger elements first, keeping the given order among tensors of equal
   * element size. Every tensor then starts at a multiple of its element size in the file (the
   * header is padded to 8), which mmap-based readers need for zero-copy views. The reference
   * writer also sorts by dtype but then by name; we keep the caller's order, which is usually
   * the model's layer order. 'given': exactly the order of `specs`.
   */
  order?: 'aligned' | 'given';
}

interface Slot {
  readonly spec: TensorSpec;
  readonly begin: number;
  readonly byteLength: number;
  written: number;
}

const MAX_WRITE = 1 << 30;

function planLayout(specs: readonly TensorSpec[], order: 'aligned' | 'given'): Slot[] {
  const seen = new Set<string>();
  const checked = specs.map((s, i): TensorSpec => {
    const where = `specs[${i}]`;
    if (typeof s?.name !== 'string') {
      throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected a string for ${where}.name, got ${String(s?.name)}`);
    }
    if (s.name === METADATA_KEY) {
      throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `${where}: ${METADATA_KEY} is reserved and cannot name a tensor`);
    }
    if (seen.has(s.name)) throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `${where}: tensor ${JSON.stringify(s.name)} is listed twice`);
    seen.add(s.name);
    dtypeInfo(s.dtype as unknown, `${where}.dtype`);
    return { name: s.name, dtype: s.dtype, shape: validateShape(s.shape, `${where}.shape`) };
  });
  const ordered =
    order === 'given' ? checked : checked.map((s, i) => ({ s, i })).sort((a, b) => DTYPE_INFO[b.s.dtype].size - DTYPE_INFO[a.s.dtype].size || a.i - b.i).map((x) => x.s);
  let offset = 0;
  return ordered.map((spec) => {
    const byteLength = numelOf(spec.shape) * DTYPE_INFO[spec.dtype].size;
    const slot = { spec, begin: offset, byteLength, written: 0 };
    offset += byteLength;
    return slot;
  });
}

function encodeHeader(slots: readonly Slot[], metadata: Readonly<Record<string, string>> | undefined): Uint8Array {
  // Built by hand rather than from an object, so that names like "__proto__" stay plain keys
  // and the key order is the data order.
  const parts: string[] = [];
  if (metadata !== undefined) {
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
      throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', 'expected metadata to be an object of strings');
    }
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') {
        throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected a string for metadata.${k}, got ${typeof v}`);
      }
    }
    parts.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  }
  for (const s of slots) {
    const entry = { dtype: s.spec.dtype, shape: s.spec.shape, data_offsets: [s.begin, s.begin + s.byteLength] };
    parts.push(`${JSON.stringify(s.spec.name)}:${JSON.stringify(entry)}`);
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  // Pad with spaces (valid JSON whitespace) to a multiple of 8, as the reference writer does,
  // so the data region starts 8-aligned.
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded > MAX_HEADER_BYTES) {
    throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `the header would be ${padded} bytes, above the ${MAX_HEADER_BYTES}-byte limit readers enforce`);
  }
  const out = new Uint8Array(8 + padded).fill(0x20, 8 + json.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/**
 * Streams a safetensors file to disk. The layout is fixed from the specs at creation, so the
 * header goes out first and tensor data can follow in any order and in chunks of any size;
 * nothing beyond the chunk being written is held in memory. Output goes to a temporary file
 * beside the target, renamed into place by `finish()`. Any failure deletes the temporary
 * file, so the target is either complete or untouched.
 */
export class SafetensorsWriter {
  private readonly slots: Map<string, Slot>;
  private state: 'open' | 'finished' | 'aborted' = 'open';

  private constructor(
    readonly path: string,
    private readonly tempPath: string,
    private readonly handle: FileHandle,
    private readonly dataStart: number,
    slots: Slot[],
  ) {
    this.slots = new Map(slots.map((s) => [s.spec.name, s]));
  }

  static async create(path: string, specs: readonly TensorSpec[], options: WriterOptions = {}): Promise<SafetensorsWriter> {
    const slots = planLayout(specs, options.order ?? 'aligned');
    const header = encodeHeader(slots, options.metadata);
    const tempPath = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
    let handle: FileHandle;
    try {
      handle = await open(tempPath, 'wx');
    } catch (e) {
      throw new SlipstreamError('SLIP_E_IO', `cannot create ${tempPath}: ${(e as Error).message}`, { cause: e });
    }
    const writer = new SafetensorsWriter(path, tempPath, handle, header.byteLength, slots);
    await writer.guard(() => writer.writeAt(header, 0));
    return writer;
  }

  /** Tensor specs in file order. */
  layout(): TensorSpec[] {
    return [...this.slots.values()].map((s) => s.spec);
  }

  /**
   * Appends bytes to tensor `name`. Chunks of one tensor land in call order; different tensors
   * may be interleaved. A Tensor chunk must have the spec's dtype.
   */
  async write(name: string, chunk: Uint8Array | Tensor): Promise<void> {
    await this.guard(async () => {
      const slot = this.slot(name);
      if (chunk instanceof Uint8Array) return this.append(slot, chunk);
      this.checkDType(slot, chunk.dtype);
      return this.append(slot, chunk.bytes());
    });
  }

  /** Writes a whole tensor, which must match its spec's dtype and shape. */
  async writeTensor(name: string, tensor: Tensor): Promise<void> {
    await this.guard(async () => {
      const slot = this.slot(name);
      this.checkDType(slot, tensor.dtype);
      if (!sameShape(slot.spec.shape, tensor.shape)) {
        throw new SlipstreamError(
          'SLIP_E_SHAPE_MISMATCH',
          `${this.path}: expected shape ${shapeToString(slot.spec.shape)} for tensor ${JSON.stringify(name)}, got ${shapeToString(tensor.shape)}`,
        );
      }
      if (slot.written !== 0) {
        throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `${this.path}: tensor ${JSON.stringify(name)} was already written`);
      }
      await this.append(slot, tensor.bytes());
    });
  }

  /** Checks that every tensor is complete, flushes, and renames into place. */
  async finish(): Promise<string> {
    await this.guard(async () => {
      const missing = [...this.slots.values()].filter((s) => s.written !== s.byteLength);
      if (missing.length > 0) {
        const list = missing.slice(0, 5).map((s) => `${JSON.stringify(s.spec.name)} (${s.written} of ${s.byteLength} bytes)`);
        throw new SlipstreamError('SLIP_E_SHAPE_MISMATCH', `${this.path}: incomplete tensors: ${list.join(', ')}${missing.length > 5 ? ', ...' : ''}`);
      }
      try {
        await this.handle.sync();
        await this.handle.close();
        await rename(this.tempPath, this.path);
      } catch (e) {
        throw new SlipstreamError('SLIP_E_IO', `cannot write ${this.path}: ${(e as Error).message}`, { cause: e });
      }
      this.state = 'finished';
    });
    return this.path;
  }

  /** Discards the temporary file. Safe to call more than once. */
  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    await this.handle.close().catch(() => undefined);
    await unlink(this.tempPath).catch(() => undefined);
  }

  private slot(name: string): Slot {
    const slot = this.slots.get(name);
    if (slot === undefined) {
      throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `${this.path}: no tensor named ${JSON.stringify(name)} was declared`);
    }
    return slot;
  }

  private checkDType(slot: Slot, dtype: DType): void {
    if (dtype !== slot.spec.dtype) {
      throw new SlipstreamError(
        'SLIP_E_DTYPE_MISMATCH',
        `${this.path}: expected ${slot.spec.dtype} data for tensor ${JSON.stringify(slot.spec.name)}, got ${dtype}`,
      );
    }
  }

  private async append(slot: Slot, bytes: Uint8Array): Promise<void> {
    if (slot.written + bytes.byteLength > slot.byteLength) {
      const { name, dtype, shape } = slot.spec;
      throw new SlipstreamError(
        'SLIP_E_SHAPE_MISMATCH',
        `${this.path}: tensor ${JSON.stringify(name)} (${dtype} ${shapeToString(shape)}) takes ${slot.byteLength} bytes, but ${slot.written + bytes.byteLength} were written`,
      );
    }
    // Advance before awaiting, so that concurrent calls keep their call order.
    const position = this.dataStart + slot.begin + slot.written;
    slot.written += bytes.byteLength;
    await this.writeAt(bytes, position);
  }

  private async writeAt(bytes: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < bytes.byteLength) {
      const length = Math.min(MAX_WRITE, bytes.byteLength - done);
      let bytesWritten: number;
      try {
        ({ bytesWritten } = await this.handle.write(bytes, done, length, position + done));
      } catch (e) {
        throw new SlipstreamError('SLIP_E_IO', `cannot write ${this.tempPath}: ${(e as Error).message}`, { cause: e });
      }
      done += bytesWritten;
    }
  }

  /** Runs `fn`; on any error removes the temporary file before rethrowing. */
  private async guard(fn: () => Promise<void>): Promise<void> {
    if (this.state !== 'open') {
      throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `${this.path}: the writer is already ${this.state}`);
    }
    try {
      await fn();
    } catch (e) {
      await this.abort();
      throw e;
    }
  }
}

/** Writes tensors in one go (each tensor's bytes go straight from its own memory). */
export async function writeSafetensors(
  path: string,
  tensors: Readonly<Record<string, Tensor>> | ReadonlyMap<string, Tensor>,
  metadata?: Readonly<Record<string, string>>,
  options: Omit<WriterOptions, 'metadata'> = {},
): Promise<string> {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const specs = entries.map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape }));
  const writer = await SafetensorsWriter.create(path, specs, { ...options, metadata });
  for (const [name, t] of entries) await writer.writeTensor(name, t);
  return writer.finish();
}
