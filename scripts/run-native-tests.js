#!/usr/bin/env node
// Runs the native C++ tests (native/test/test-*.cpp) that the native build compiled, via ctest.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const build = path.join(root, 'build');
if (!existsSync(path.join(build, 'CTestTestfile.cmake'))) {
  console.error('slipstream: no native build with tests in build/; run `npm install` or `npm run build:native` first');
  process.exit(1);
}
const result = spawnSync('ctest', ['--output-on-failure', '-j2'], { cwd: build, stdio: 'inherit' });
process.exit(result.status ?? 1);
