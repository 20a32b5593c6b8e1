import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SlipstreamError } from '../errors/index.js';
import type { SchemaDefinition } from './define.js';

/** Named schema definitions; the source of the generated JSON Schema files. */
export class SchemaRegistry {
  private readonly byName = new Map<string, SchemaDefinition>();

  add(definition: SchemaDefinition): void {
    const existing = this.byName.get(definition.name);
    if (existing !== undefined && existing !== definition) {
      throw new SlipstreamError('SLIP_E_SCHEMA', `a schema named "${definition.name}" is already registered`);
    }
    this.byName.set(definition.name, definition);
  }

  get(name: string): SchemaDefinition {
    const d = this.byName.get(name);
    if (d === undefined) {
      throw new SlipstreamError('SLIP_E_SCHEMA', `no schema named "${name}" (known: ${this.names().join(', ') || 'none'})`);
    }
    return d;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** Sorted, so generated output does not depend on import order. */
  names(): string[] {
    return [...this.byName.keys()].sort();
  }

  list(): SchemaDefinition[] {
    return this.names().map((n) => this.byName.get(n)!);
  }
}

/** The registry `defineSchema` adds to unless told otherwise. */
export const schemaRegistry = new SchemaRegistry();

export function jsonSchemaFileName(name: string): string {
  return `${name}.schema.json`;
}

/** File name → file text for every registered schema. */
export function renderJsonSchemas(registry: SchemaRegistry = schemaRegistry): Map<string, string> {
  const out = new Map<string, string>();
  for (const d of registry.list()) out.set(jsonSchemaFileName(d.name), `${JSON.stringify(d.jsonSchema(), null, 2)}\n`);
  return out;
}

/** Writes `<name>.schema.json` per schema into `dir` (each atomically); returns the paths. */
export async function writeJsonSchemas(dir: string, registry: SchemaRegistry = schemaRegistry): Promise<string[]> {
  const files = renderJsonSchemas(registry);
  const written: string[] = [];
  try {
    await mkdir(dir, { recursive: true });
    for (const [file, text] of files) {
      const path = join(dir, file);
      const temp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
      try {
        await writeFile(temp, text, { flag: 'wx' });
        await rename(temp, path);
      } catch (e) {
        await rm(temp, { force: true });
        throw e;
      }
      written.push(path);
    }
  } catch (e) {
    throw new SlipstreamError('SLIP_E_IO', `cannot write JSON Schemas to ${dir}: ${(e as Error).message}`, { cause: e });
  }
  return written;
}

/**
 * File names in `dir` that are missing or differ from what `writeJsonSchemas` would write;
 * a test can assert this is empty so that committed schemas never go stale.
 */
export async function staleJsonSchemas(dir: string, registry: SchemaRegistry = schemaRegistry): Promise<string[]> {
  const stale: string[] = [];
  for (const [file, text] of renderJsonSchemas(registry)) {
    const current = await readFile(join(dir, file), 'utf8').catch(() => undefined);
    if (current !== text) stale.push(file);
  }
  return stale;
}
