#!/usr/bin/env node
// Bundles the ComfyUI frontend extension (adapters/comfyui/web/src) into the one ESM file the
// node pack serves, adapters/comfyui/web/dist/slipstream.js (committed: users install the pack
// without Node). A vitest test rebuilds it and checks the committed file is in step.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { bundleWeb } from './web-bundle.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'adapters', 'comfyui', 'web', 'dist', 'slipstream.js');
await bundleWeb(root, out);
console.log(`wrote ${path.relative(root, out)}`);
