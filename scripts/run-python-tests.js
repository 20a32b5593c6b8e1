#!/usr/bin/env node
// Runs the Python tests (adapters/torch/tests, models/*) in the project's venv against the built library.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

import { ensurePythonEnv, root } from './python-env.js';

const python = ensurePythonEnv();
// The adapters' tests, and each shipped model's own tests (models/<name>/test_*.py).
const suites = [
  path.join(root, 'adapters', 'torch', 'tests'),
  path.join(root, 'adapters', 'comfyui', 'tests'),
  path.join(root, 'adapters', 'vllm', 'python', 'tests'),
  path.join(root, 'models', 'wan-mini'),
  path.join(root, 'models', 'qwen3-mini'),
  path.join(root, 'models', 'mdlm-mini'),
];
const result = spawnSync(python, ['-m', 'pytest', '-q', ...suites, ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
