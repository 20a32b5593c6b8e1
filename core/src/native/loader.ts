/**
 * Finds and loads the native build. Tries each candidate in order, keeps every failure, checks
 * the ABI version, then either returns the binding or throws one SlipstreamError listing the
 * causes and the fix.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { SlipstreamError } from '../errors/index.js';
import type { NativeBinding } from './binding.js';

/** The ABI this TypeScript was written against (SLIP_ABI_VERSION in slipstream.h). */
export const ABI_VERSION = 1;

const require = createRequire(import.meta.url);

/** The repository root, from core/src/native (sources) or dist/core/src/native (compiled). */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i += 1) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'native'))) return dir;
    dir = path.dirname(dir);
  }
  throw new SlipstreamError('SLIP_E_NATIVE_MISSING', `cannot find the Slipstream package root above ${fileURLToPath(import.meta.url)}`);
}

export function candidatePaths(): string[] {
  const fromEnv = process.env.SLIPSTREAM_NODE_BINDING;
  const root = packageRoot();
  return [
    ...(fromEnv ? [fromEnv] : []),
    path.join(root, 'build', 'Release', 'slipstream_node.node'),
    path.join(root, 'build', 'Debug', 'slipstream_node.node'),
  ];
}

export function loadBinding(candidates: string[] = candidatePaths()): NativeBinding {
  const failures: string[] = [];
  for (const candidate of candidates) {
    if (!existsSync(candidate)) {
      failures.push(`${candidate}: not found`);
      continue;
    }
    let binding: NativeBinding;
    try {
      binding = require(candidate) as NativeBinding;
    } catch (err) {
      failures.push(`${candidate}: ${(err as Error).message.split('\n')[0]}`);
      continue;
    }
    const abi = binding.abiVersion();
    if (abi !== ABI_VERSION) {
      throw new SlipstreamError(
        'SLIP_E_NATIVE_STALE',
        `the native build at ${candidate} has ABI version ${abi} but this code needs ${ABI_VERSION}; rebuild it with \`npm run build:native\``,
      );
    }
    return binding;
  }
  throw new SlipstreamError(
    'SLIP_E_NATIVE_MISSING',
    `the Slipstream native core is not built; run \`npm install\` (or \`npm run build:native\`) in ${packageRoot()}. Tried:\n  ${failures.join('\n  ')}`,
  );
}

let cached: NativeBinding | undefined;

/** The loaded binding (loaded on first use). */
export function native(): NativeBinding {
  cached ??= loadBinding();
  return cached;
}
