#!/usr/bin/env node
// Builds libslipstream and its Node binding with cmake-js (no header download: package.json
// declares napi_versions). CUDA is built when nvcc is on PATH; SLIPSTREAM_CUDA=0 forces it off.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const cmakeJs = path.join(path.dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');

const args = [cmakeJs, 'compile', '--directory', root];
const cuda = process.env.SLIPSTREAM_CUDA;
if (cuda === '0' || cuda === 'off' || cuda === 'OFF') args.push('--CDSLIPSTREAM_CUDA=OFF');
if (process.env.SLIPSTREAM_DEBUG === '1') args.push('--debug');

const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (result.status !== 0) {
  console.error(
    'slipstream: building the native core failed. It needs cmake >= 3.20 and a C++17 compiler ' +
      '(g++ or clang); set SLIPSTREAM_CUDA=0 to skip the CUDA backend.',
  );
  process.exit(result.status ?? 1);
}
