/**
 * `slipstream comfy install <ComfyUI dir>`: the node pack into ComfyUI/custom_nodes/slipstream, with
 * libslipstream and its torch ops in lib/ (where slipstream_comfy/kernels.py looks), copied beside
 * the target under a temporary name and renamed into place.
 */
import { cp, mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { SlipstreamError } from '../../../core/src/errors/index.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
// From dist/ as from the sources: the repository root is the one holding package.json.
const REPO = (await exists(path.join(ROOT, 'package.json'))) ? ROOT : path.resolve(ROOT, '..');

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

export async function installPack(comfyDir: string, library?: string): Promise<string> {
  if (!(await exists(path.join(comfyDir, 'comfy'))) || !(await exists(path.join(comfyDir, 'custom_nodes'))))
    throw new SlipstreamError('SLIP_E_IO', `${comfyDir}: not a ComfyUI folder (expected comfy/ and custom_nodes/ in it)`);
  const candidates = library ? [library] : [path.join(REPO, 'build', 'Release', 'libslipstream.so'), path.join(REPO, 'build', 'libslipstream.so')];
  let libPath: string | undefined;
  for (const c of candidates)
    if (await exists(c)) {
      libPath = c;
      break;
    }
  if (!libPath) throw new SlipstreamError('SLIP_E_NATIVE_MISSING', 'libslipstream.so is not built: run `npm install` first');
  const target = path.join(comfyDir, 'custom_nodes', 'slipstream');
  const temp = `${target}.tmp-${process.pid}`;
  const pack = path.join(REPO, 'adapters', 'comfyui');
  try {
    await rm(temp, { recursive: true, force: true });
    await mkdir(temp, { recursive: true });
    for (const f of ['__init__.py', 'pyproject.toml', 'requirements.txt', 'slipstream_comfy', 'web/dist'])
      await cp(path.join(pack, f), path.join(temp, f), { recursive: true, filter: (src) => !src.includes('__pycache__') });
    await cp(path.join(REPO, 'adapters', 'torch', 'slipstream_torch'), path.join(temp, 'lib', 'slipstream_torch'), {
      recursive: true,
      filter: (src) => !src.includes('__pycache__'),
    });
    await cp(libPath, path.join(temp, 'lib', 'slipstream_torch', 'libslipstream.so'));
    const old = `${target}.old-${process.pid}`;
    if (await exists(target)) await rename(target, old);
    await rename(temp, target);
    await rm(old, { recursive: true, force: true });
  } catch (err) {
    await rm(temp, { recursive: true, force: true });
    if (err instanceof SlipstreamError) throw err;
    throw new SlipstreamError('SLIP_E_IO', `cannot install into ${target}: ${(err as Error).message}`);
  }
  return target;
}
