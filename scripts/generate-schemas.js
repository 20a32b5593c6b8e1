#!/usr/bin/env node
// Writes the JSON Schema of every user-facing JSON format into workflows/schema/ (from dist/).
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { schemaRegistry } = await import(pathToFileURL(path.join(root, 'dist/cli/schemas.js')).href);
const { writeJsonSchemas } = await import(pathToFileURL(path.join(root, 'dist/core/src/schema/index.js')).href);
for (const file of await writeJsonSchemas(path.join(root, 'workflows', 'schema'), schemaRegistry)) console.log(`wrote ${path.relative(root, file)}`);
