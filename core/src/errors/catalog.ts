/**
 * The one error catalog. Every code is stable, documented in docs/errors.md (a test keeps the two
 * in step) and, where it comes from native, maps one-to-one to a slip_status of slipstream.h.
 */
export const ERROR_CODES = {
  SLIP_E_INVALID_ARGUMENT: { status: 'SLIP_STATUS_INVALID_ARGUMENT', fix: 'check the argument named in the message' },
  SLIP_E_SHAPE_MISMATCH: { status: 'SLIP_STATUS_SHAPE_MISMATCH', fix: 'check the tensor shapes named in the message' },
  SLIP_E_DTYPE_MISMATCH: { status: 'SLIP_STATUS_DTYPE_MISMATCH', fix: 'convert the tensor to the dtype named in the message' },
  SLIP_E_NON_FINITE: { status: 'SLIP_STATUS_NON_FINITE', fix: 'remove NaN/Inf from the input, or pass --allow-nonfinite where offered' },
  SLIP_E_UNSUPPORTED: { status: 'SLIP_STATUS_UNSUPPORTED', fix: 'use another format or device; `slipstream info` lists what this build supports' },
  SLIP_E_OUT_OF_MEMORY: { status: 'SLIP_STATUS_OUT_OF_MEMORY', fix: 'free memory or work on smaller tensors' },
  SLIP_E_CUDA: { status: 'SLIP_STATUS_CUDA_ERROR', fix: 'check the driver and the device named in the message' },
  SLIP_E_INTERNAL: { status: 'SLIP_STATUS_INTERNAL', fix: 'this is a bug in Slipstream: please report it with the message' },
  SLIP_E_NATIVE_MISSING: { status: null, fix: 'run `npm install` (or `npm run build:native`) to build the native core' },
  SLIP_E_NATIVE_STALE: { status: null, fix: 'rebuild the native core with `npm run build:native`' },
  SLIP_E_IO: { status: null, fix: 'check that the path exists and is readable/writable' },
  SLIP_E_CORRUPT_FILE: { status: null, fix: 'the file is damaged or not what its name says: re-create or re-download it' },
  SLIP_E_SCHEMA: { status: null, fix: 'fix the field at the path named in the message' },
  SLIP_E_USAGE: { status: null, fix: 'see `slipstream help <command>`' },
  SLIP_E_REMOTE: { status: null, fix: 'fix the node or input the server named, or check that the server is up' },
  SLIP_E_ABORTED: { status: null, fix: 'the run was stopped (a signal or the caller) before it wrote anything: run it again' },
} as const satisfies Record<string, { status: string | null; fix: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An error from Slipstream: `code` is stable, the message names what and where. */
export class SlipstreamError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SlipstreamError';
    this.code = code;
  }
}

const BY_STATUS = new Map<string, ErrorCode>(
  Object.entries(ERROR_CODES)
    .filter(([, v]) => v.status !== null)
    .map(([k, v]) => [v.status as string, k as ErrorCode]),
);

/** The catalog code of a native status name ("SLIP_STATUS_SHAPE_MISMATCH" → SLIP_E_SHAPE_MISMATCH). */
export function codeForStatus(status: string): ErrorCode {
  return BY_STATUS.get(status) ?? 'SLIP_E_INTERNAL';
}

/**
 * Turns an error thrown by the native binding into a SlipstreamError. `site` is an Error made
 * before the native call, so the stack shows the user's call, not the binding's internals.
 */
export function fromNative(err: unknown, site?: Error): unknown {
  if (!(err instanceof Error) || typeof (err as { code?: unknown }).code !== 'string') return err;
  const status = (err as Error & { code: string }).code;
  if (!status.startsWith('SLIP_STATUS_')) return err;
  const e = new SlipstreamError(codeForStatus(status), err.message);
  if (site?.stack) e.stack = `SlipstreamError: ${err.message}\n${site.stack.split('\n').slice(1).join('\n')}`;
  return e;
}

/** "expected <what> for <name>, got <value of type>" — the one shape of argument errors. */
export function invalidArgument(name: string, expected: string, actual: unknown): SlipstreamError {
  const shown = typeof actual === 'string' ? JSON.stringify(actual) : String(actual);
  const type = actual === null ? 'null' : Array.isArray(actual) ? 'array' : typeof actual;
  return new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected ${expected} for ${name}, got ${shown} of type ${type}`);
}
