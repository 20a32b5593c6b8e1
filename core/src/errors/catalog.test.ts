import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { ERROR_CODES, codeForStatus, fromNative, invalidArgument, SlipstreamError } from './index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

describe('error catalog', () => {
  it('documents every code in docs/errors.md, and documents no removed code', () => {
    const doc = readFileSync(path.join(root, 'docs/errors.md'), 'utf8');
    const documented = new Set([...doc.matchAll(/^\| `(SLIP_E_[A-Z_]+)`/gm)].map((m) => m[1]));
    expect([...documented].sort()).toEqual(Object.keys(ERROR_CODES).sort());
  });

  it('maps every native status of slipstream.h to exactly one code', () => {
    const header = readFileSync(path.join(root, 'native/include/slipstream.h'), 'utf8');
    const statuses = [...header.matchAll(/^\s+(SLIP_STATUS_[A-Z_]+) = \d+/gm)].map((m) => m[1]).filter((s) => s !== 'SLIP_STATUS_OK');
    expect(statuses.length).toBeGreaterThan(5);
    const mapped = Object.values(ERROR_CODES).map((v) => v.status).filter((s) => s !== null);
    expect([...mapped].sort()).toEqual([...statuses].sort());
    for (const s of statuses) expect(ERROR_CODES[codeForStatus(s)].status).toBe(s);
  });

  it('turns a native error into a SlipstreamError that keeps the message', () => {
    const raw = Object.assign(new Error('expected dtype F32 for x, got I8'), { code: 'SLIP_STATUS_DTYPE_MISMATCH' });
    const e = fromNative(raw, new Error());
    expect(e).toBeInstanceOf(SlipstreamError);
    expect((e as SlipstreamError).code).toBe('SLIP_E_DTYPE_MISMATCH');
    expect((e as SlipstreamError).message).toBe('expected dtype F32 for x, got I8');
    const other = new TypeError('plain');
    expect(fromNative(other)).toBe(other);
  });

  it('writes argument errors in one shape', () => {
    expect(invalidArgument('format', 'one of int8|fp8', 'int3').message).toBe(
      'expected one of int8|fp8 for format, got "int3" of type string',
    );
  });
});
