/**
 * Reading a whole Hugging Face-style safetensors checkpoint into tensors: the loaders of the
 * native runtimes (Wan, Qwen3) share it.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { SlipstreamError } from '../errors/index.js';
import { SafetensorsReader } from '../safetensors/index.js';
import type { Tensor } from '../tensor/index.js';

/** tensor name -> shard file: from the index json when the folder has one, else one file. */
async function weightFiles(path: string): Promise<Map<string, string>> {
  const info = await stat(path);
  if (info.isFile()) {
    const r = await SafetensorsReader.open(path);
    try {
      return new Map(r.names().map((n) => [n, path]));
    } finally {
      await r.close();
    }
  }
  const entries = await readdir(path);
  const index = entries.find((e) => e.endsWith('.safetensors.index.json'));
  if (index !== undefined) {
    const json = JSON.parse(await readFile(join(path, index), 'utf8')) as { weight_map?: Record<string, string> };
    if (typeof json.weight_map !== 'object' || json.weight_map === null) {
      throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected a "weight_map" object in ${join(path, index)}, got ${String(json.weight_map)}`);
    }
    return new Map(Object.entries(json.weight_map).map(([n, f]) => [n, join(path, f)]));
  }
  const single = entries.filter((e) => e.endsWith('.safetensors'));
  if (single.length !== 1) {
    throw new SlipstreamError(
      'SLIP_E_INVALID_ARGUMENT',
      `expected a *.safetensors.index.json or exactly one .safetensors file in ${path}, got ${single.length} .safetensors files and no index`,
    );
  }
  return weightFiles(join(path, single[0]!));
}

/** Every tensor of a checkpoint (a folder of shards with an index json, a folder with one
 *  .safetensors file, or a .safetensors path), one shard open at a time. */
export async function readCheckpoint(path: string): Promise<Map<string, Tensor>> {
  const files = await weightFiles(path);
  const byFile = new Map<string, string[]>();
  for (const [name, file] of files) byFile.set(file, [...(byFile.get(file) ?? []), name]);
  const out = new Map<string, Tensor>();
  for (const [file, names] of byFile) {
    const r = await SafetensorsReader.open(file);
    try {
      for (const n of names) out.set(n, await r.tensor(n));
    } finally {
      await r.close();
    }
  }
  return out;
}
