import type { z } from 'zod';

import { SlipstreamError } from '../errors/index.js';

/**
 * Validates a function argument (an options object, a format name) against its schema; on
 * failure throws SLIP_E_INVALID_ARGUMENT "invalid <name>.<path>: <problem>" for the first issue.
 * The argument-level counterpart of a definition's parse(), which reports every issue of a file.
 */
export function parseArgument<S extends z.ZodType>(schema: S, value: unknown, name: string): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const path = [name, ...issue.path.map(String)].filter((part) => part !== '').join('.');
  throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `invalid ${path}: ${issue.message}`);
}
