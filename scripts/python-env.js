#!/usr/bin/env node
// Makes the project's Python venv (.venv) once per clone and installs the test requirements.
// Uses the package indexes pip is configured with, passed explicitly as --index-url so pip never
// waits on an unreachable default index.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const venvPython = path.join(root, '.venv', 'bin', 'python');
const requirements = path.join(root, 'adapters', 'torch', 'requirements-test.txt');
const stamp = path.join(root, '.venv', '.requirements-installed');

function pipIndexArgs() {
  let listing = '';
  try {
    listing = execFileSync('python3', ['-m', 'pip', 'config', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return [];
  }
  const value = (key) => {
    const m = listing.match(new RegExp(`^[^\\n]*\\.${key}='([^']*)'`, 'm'));
    return m ? m[1].split(/\s+/).filter(Boolean) : [];
  };
  const indexes = [...value('index-url'), ...value('extra-index-url')];
  const links = value('find-links');
  const args = [];
  if (indexes.length) {
    args.push('--index-url', indexes[0]);
    for (const extra of indexes.slice(1)) args.push('--extra-index-url', extra);
  }
  for (const link of links) args.push('--find-links', link);
  return args;
}

export function ensurePythonEnv() {
  const wanted = readFileSync(requirements, 'utf8');
  if (existsSync(venvPython) && existsSync(stamp) && readFileSync(stamp, 'utf8') === wanted) return venvPython;
  if (!existsSync(venvPython)) {
    const made = spawnSync('python3', ['-m', 'venv', path.join(root, '.venv')], { stdio: 'inherit' });
    if (made.status !== 0) throw new Error('slipstream: could not create the Python venv (.venv) with `python3 -m venv`');
  }
  const pip = spawnSync(venvPython, ['-m', 'pip', 'install', '--disable-pip-version-check', '-q', ...pipIndexArgs(), '-r', requirements], {
    stdio: 'inherit',
  });
  if (pip.status !== 0) throw new Error(`slipstream: installing ${path.relative(root, requirements)} into .venv failed`);
  writeFileSync(stamp, wanted);
  return venvPython;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) ensurePythonEnv();
