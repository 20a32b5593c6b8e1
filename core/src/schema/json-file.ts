import { readFile } from 'node:fs/promises';
import type { z } from 'zod';
import { SlipstreamError } from '../errors/index.js';
import type { SchemaDefinition } from './define.js';

function lineAndColumn(text: string, position: number): string {
  const before = text.slice(0, position);
  const line = before.split('\n').length;
  const column = position - before.lastIndexOf('\n');
  return `line ${line}, column ${column}`;
}

/** Parses JSON text, reporting syntax errors by line and column. */
export function parseJsonText(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const message = (e as Error).message;
    const m = /at position (\d+)/.exec(message);
    const at = m === null ? '' : ` at ${lineAndColumn(text, Number(m[1]))}`;
    throw new SlipstreamError('SLIP_E_SCHEMA', `${where}: invalid JSON${at}: ${message.replace(/ in JSON at position \d+.*$/, '')}`);
  }
}

/** Reads a JSON file without a schema (the caller checks it); syntax errors by line and column. */
export async function readJsonFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new SlipstreamError('SLIP_E_IO', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  return parseJsonText(text, path);
}

/** Reads a JSON file and validates it against a schema; messages start with the path. */
export async function parseJsonFile<S extends z.ZodType>(path: string, definition: SchemaDefinition<S>): Promise<z.output<S>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new SlipstreamError('SLIP_E_IO', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  return definition.parse(parseJsonText(text, path), path);
}
