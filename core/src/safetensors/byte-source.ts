import { open, type FileHandle } from 'node:fs/promises';
import { SlipstreamError } from '../errors/index.js';

/** Random-access bytes: a file, or memory (tests, data fetched elsewhere). */
export interface ByteSource {
  /** How the source is named in messages. */
  readonly label: string;
  readonly size: number;
  /** Fills `target` from `position`; throws SLIP_E_CORRUPT_FILE if the source ends first. */
  readInto(target: Uint8Array, position: number, what: string): Promise<void>;
  close(): Promise<void>;
}

// One read() call moves at most this much; Linux caps a single read near 2 GiB anyway.
const MAX_READ = 1 << 30;

class FileSource implements ByteSource {
  constructor(
    private readonly handle: FileHandle,
    readonly label: string,
    readonly size: number,
  ) {}

  async readInto(target: Uint8Array, position: number, what: string): Promise<void> {
    let done = 0;
    while (done < target.byteLength) {
      const length = Math.min(MAX_READ, target.byteLength - done);
      let bytesRead: number;
      try {
        ({ bytesRead } = await this.handle.read(target, done, length, position + done));
      } catch (e) {
        throw new SlipstreamError('SLIP_E_IO', `${this.label}: cannot read ${what}: ${(e as Error).message}`, { cause: e });
      }
      if (bytesRead === 0) {
        throw new SlipstreamError(
          'SLIP_E_CORRUPT_FILE',
          `${this.label}: file ended at byte ${position + done} while reading ${what}; was it truncated after opening?`,
        );
      }
      done += bytesRead;
    }
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

class MemorySource implements ByteSource {
  constructor(
    private readonly bytes: Uint8Array,
    readonly label: string,
  ) {}

  get size(): number {
    return this.bytes.byteLength;
  }

  async readInto(target: Uint8Array, position: number, what: string): Promise<void> {
    if (position + target.byteLength > this.bytes.byteLength) {
      throw new SlipstreamError('SLIP_E_CORRUPT_FILE', `${this.label}: data ends at byte ${this.bytes.byteLength} while reading ${what}`);
    }
    target.set(this.bytes.subarray(position, position + target.byteLength));
  }

  async close(): Promise<void> {}
}

/** Opens a file for reading. Messages name the file by the path given. */
export async function openFileSource(path: string): Promise<ByteSource> {
  const label = path;
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    throw new SlipstreamError('SLIP_E_IO', `cannot open ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new SlipstreamError('SLIP_E_IO', `${path} is not a regular file`);
    return new FileSource(handle, label, stat.size);
  } catch (e) {
    await handle.close();
    if (e instanceof SlipstreamError) throw e;
    throw new SlipstreamError('SLIP_E_IO', `cannot stat ${path}: ${(e as Error).message}`, { cause: e });
  }
}

export function memorySource(bytes: Uint8Array, label: string): ByteSource {
  return new MemorySource(bytes, label);
}
