#!/usr/bin/env node
// Runs the Python tests (adapters/*/tests) in the project's venv against the built library.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

import { ensurePythonEnv, root } from './python-env.js';

const python = ensurePythonEnv();
const result = spawnSync(python, ['-m', 'pytest', '-q', path.join(root, 'adapters', 'torch', 'tests'), ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
