/** `slipstream comfy accelerate` and `install` through the CLI, on real files. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';

import { expect, it } from 'vitest';

import { runCli } from '../../../cli/main.js';

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let o = '';
  let e = '';
  out.on('data', (d) => (o += d));
  err.on('data', (d) => (e += d));
  const code = await runCli(argv, { out, err });
  return { code, out: o, err: e };
}

const WORKFLOW = {
  '1': { class_type: 'UNETLoader', inputs: { unet_name: 'wan.safetensors', weight_dtype: 'default' } },
  '2': { class_type: 'KSampler', inputs: { model: ['1', 0], seed: 1 } },
};

it('accelerate writes the new workflow, is idempotent, and names a bad profile field', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'slip-comfy-cli-'));
  const src = path.join(dir, 'wan.json');
  await writeFile(src, JSON.stringify(WORKFLOW));
  const once = path.join(dir, 'once.json');
  const twice = path.join(dir, 'twice.json');
  expect((await cli('comfy', 'accelerate', src, '--out', once)).code).toBe(0);
  expect((await cli('comfy', 'accelerate', once, '--out', twice)).code).toBe(0);
  expect(await readFile(twice, 'utf8')).toBe(await readFile(once, 'utf8'));
  expect(JSON.parse(await readFile(once, 'utf8'))['2'].inputs.model).toEqual(['4', 0]);

  const profile = path.join(dir, 'p.json');
  await writeFile(profile, JSON.stringify({ 'delta-cache': { maxSkips: 99 } }));
  const bad = await cli('comfy', 'accelerate', src, '--out', path.join(dir, 'bad.json'), '--profile', profile);
  expect(bad.code).toBe(1);
  expect(bad.err).toMatch(/p\.json: delta-cache\.maxSkips: .*16.*\[SLIP_E_SCHEMA\]/);
  await writeFile(src, '{"1": {"class_type": "UNETLoader", "inputs": {}},}');
  const broken = await cli('comfy', 'accelerate', src, '--out', path.join(dir, 'bad.json'));
  expect(broken.err).toMatch(/wan\.json: invalid JSON at line 1/);
  expect((await readdir(dir)).filter((f) => f.startsWith('bad.json'))).toEqual([]);
  expect((await cli('comfy', 'accelerate', src)).err).toMatch(/expected --out/);
  expect((await cli('comfy', 'frobnicate', src)).code).toBe(2);
});

it('install puts the pack, its torch ops and the library into custom_nodes/slipstream', async () => {
  const comfy = await mkdtemp(path.join(tmpdir(), 'slip-comfyui-'));
  expect((await cli('comfy', 'install', comfy)).err).toMatch(/not a ComfyUI folder/);
  await mkdir(path.join(comfy, 'comfy'));
  await mkdir(path.join(comfy, 'custom_nodes'));
  for (let i = 0; i < 2; i++) expect((await cli('comfy', 'install', comfy)).code).toBe(0); // twice: replaces
  const pack = path.join(comfy, 'custom_nodes', 'slipstream');
  for (const f of ['__init__.py', 'pyproject.toml', 'slipstream_comfy/nodes.py', 'slipstream_comfy/manifests.json', 'web/dist/slipstream.js',
    'lib/slipstream_torch/ops.py', 'lib/slipstream_torch/libslipstream.so'])
    expect(existsSync(path.join(pack, f)), f).toBe(true);
  expect(await readdir(path.join(comfy, 'custom_nodes'))).toEqual(['slipstream']);
  // The installed copy loads on its own: its kernels.py finds lib/, which loads the shipped library.
  const python = path.resolve('.venv', 'bin', 'python');
  const env = { ...process.env };
  delete env.SLIPSTREAM_LIB;
  const r = spawnSync(python, ['-c', 'import sys; sys.path.insert(0, sys.argv[1]); import slipstream_comfy.nodes, torch; '
    + 'from slipstream_torch import _lib; print(_lib.lib()._name)', pack], { env, encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.stdout.trim()).toBe(path.join(pack, 'lib', 'slipstream_torch', 'libslipstream.so'));
});
