// One esbuild configuration for the ComfyUI extension bundle (used by build-web.js and its test).
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

import { build } from 'esbuild';

/** The bundle's text. */
export async function bundleText(root) {
  const r = await build({
    entryPoints: [path.join(root, 'adapters', 'comfyui', 'web', 'src', 'extension.ts')],
    bundle: true,
    format: 'esm',
    target: 'es2022',
    platform: 'browser',
    write: false,
    legalComments: 'none',
    banner: { js: '// Slipstream ComfyUI extension: built from adapters/comfyui/web/src by `npm run build:web`; do not edit.' },
  });
  return r.outputFiles[0].text;
}

/** Writes the bundle to out (a temporary name, then renamed). */
export async function bundleWeb(root, out) {
  const text = await bundleText(root);
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(`${out}.tmp`, text);
  await rename(`${out}.tmp`, out);
}
