#!/usr/bin/env node
// Writes the JSON Schema of every user-facing JSON format into workflows/schema/, and the ComfyUI
// pack's manifests.json and the ready ComfyUI workflows (all from dist/).
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { schemaRegistry } = await import(pathToFileURL(path.join(root, 'dist/cli/schemas.js')).href);
const { writeJsonSchemas } = await import(pathToFileURL(path.join(root, 'dist/core/src/schema/index.js')).href);
for (const file of await writeJsonSchemas(path.join(root, 'workflows', 'schema'), schemaRegistry)) console.log(`wrote ${path.relative(root, file)}`);

// The ComfyUI node pack's widgets come from the same manifests (adapters/comfyui/manifests.ts).
const { renderComfyManifests } = await import(pathToFileURL(path.join(root, 'dist/adapters/comfyui/manifests.js')).href);
const { writeFileAtomic } = await import(pathToFileURL(path.join(root, 'dist/core/src/fs/index.js')).href);
const packFile = path.join(root, 'adapters', 'comfyui', 'slipstream_comfy', 'manifests.json');
await writeFileAtomic(packFile, renderComfyManifests());
console.log(`wrote ${path.relative(root, packFile)}`);

// The ready ComfyUI workflows (adapters/comfyui/client/examples.ts).
const { exampleWorkflows } = await import(pathToFileURL(path.join(root, 'dist/adapters/comfyui/client/examples.js')).href);
for (const { file, workflow } of exampleWorkflows()) {
  const target = path.join(root, 'workflows', 'comfyui', file);
  await writeFileAtomic(target, `${JSON.stringify(workflow, null, 2)}\n`);
  console.log(`wrote ${path.relative(root, target)}`);
}
