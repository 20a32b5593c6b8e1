import { SlipstreamError } from '../errors/index.js';
import { Tensor } from '../tensor/tensor.js';
import { memorySource, openFileSource, type ByteSource } from './byte-source.js';
import { parseHeader, parseHeaderLength, type TensorInfo } from './header.js';

const DEFAULT_CHUNK_BYTES = 16 << 20;

/**
 * Reads a safetensors file lazily: `open` reads and validates only the header; tensor data is
 * read when asked for, one tensor (or one chunk) at a time, so multi-GB files never sit in
 * memory whole.
 */
export class SafetensorsReader {
  private readonly byName: Map<string, TensorInfo>;
  private closed = false;

  private constructor(
    private readonly source: ByteSource,
    /** Offset of the data region in the file (8 + header length). */
    readonly dataStart: number,
    private readonly ordered: readonly TensorInfo[],
    readonly metadata: Readonly<Record<string, string>>,
  ) {
    this.byName = new Map(ordered.map((t) => [t.name, t]));
  }

  static async open(path: string): Promise<SafetensorsReader> {
    return SafetensorsReader.fromSource(await openFileSource(path));
  }

  /** Reads from bytes already in memory (validated exactly as a file is). */
  static async fromBytes(bytes: Uint8Array, label = '<memory>'): Promise<SafetensorsReader> {
    return SafetensorsReader.fromSource(memorySource(bytes, label));
  }

  private static async fromSource(source: ByteSource): Promise<SafetensorsReader> {
    try {
      const prefix = new Uint8Array(8);
      if (source.size >= 8) await source.readInto(prefix, 0, 'the header length');
      const n = parseHeaderLength(prefix, source.size, source.label);
      const headerBytes = new Uint8Array(n);
      await source.readInto(headerBytes, 8, 'the header');
      const header = parseHeader(headerBytes, source.size - 8 - n, source.label);
      return new SafetensorsReader(source, 8 + n, header.tensors, header.metadata);
    } catch (e) {
      await source.close();
      throw e;
    }
  }

  /** The file (or label) named in messages. */
  get file(): string {
    return this.source.label;
  }

  /** Tensor names in data-offset order. */
  names(): string[] {
    return this.ordered.map((t) => t.name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** Entries in data-offset order. */
  infos(): readonly TensorInfo[] {
    return this.ordered;
  }

  info(name: string): TensorInfo {
    const info = this.byName.get(name);
    if (info === undefined) {
      const known = this.names();
      const list = known.slice(0, 10).map((n) => JSON.stringify(n)).join(', ') + (known.length > 10 ? ', ...' : '');
      throw new SlipstreamError(
        'SLIP_E_INVALID_ARGUMENT',
        `${this.file} has no tensor named ${JSON.stringify(name)} (it has ${known.length}${known.length > 0 ? `: ${list}` : ''})`,
      );
    }
    return info;
  }

  /** Reads one tensor into fresh, aligned memory. */
  async tensor(name: string): Promise<Tensor> {
    const info = this.info(name);
    this.checkOpen();
    const bytes = new Uint8Array(info.byteLength);
    await this.source.readInto(bytes, this.dataStart + info.dataOffsets[0], `tensor ${JSON.stringify(name)}`);
    return Tensor.fromBytes(info.dtype, info.shape, bytes);
  }

  /**
   * Yields a tensor's bytes in pieces of at most `chunkBytes`, for copying tensors larger than
   * what should be held at once. Each chunk is a fresh buffer.
   */
  async *chunks(name: string, chunkBytes = DEFAULT_CHUNK_BYTES): AsyncGenerator<Uint8Array> {
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes <= 0) {
      throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected a positive integer for chunkBytes, got ${chunkBytes}`);
    }
    const info = this.info(name);
    const [begin, end] = info.dataOffsets;
    for (let pos = begin; pos < end; pos += chunkBytes) {
      this.checkOpen();
      const chunk = new Uint8Array(Math.min(chunkBytes, end - pos));
      await this.source.readInto(chunk, this.dataStart + pos, `tensor ${JSON.stringify(name)}`);
      yield chunk;
    }
  }

  /** Yields [name, tensor] in data-offset order, reading one tensor at a time. */
  async *[Symbol.asyncIterator](): AsyncGenerator<[string, Tensor]> {
    for (const info of this.ordered) yield [info.name, await this.tensor(info.name)];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.source.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `${this.file}: the reader is closed`);
  }
}

export interface SafetensorsContents {
  tensors: Record<string, Tensor>;
  metadata: Readonly<Record<string, string>>;
}

/** Reads a whole file into memory. Meant for small files; use SafetensorsReader otherwise. */
export async function readSafetensors(path: string): Promise<SafetensorsContents> {
  const reader = await SafetensorsReader.open(path);
  try {
    const tensors: Record<string, Tensor> = Object.create(null);
    for await (const [name, t] of reader) tensors[name] = t;
    return { tensors, metadata: reader.metadata };
  } finally {
    await reader.close();
  }
}
