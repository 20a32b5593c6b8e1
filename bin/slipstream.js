#!/usr/bin/env node
// The `slipstream` command. The TypeScript sources are compiled into dist/ by `npm install`.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const main = path.join(root, 'dist', 'cli', 'main.js');
if (!existsSync(main)) {
  console.error(`slipstream: the TypeScript build is missing (${path.relative(root, main)}); run \`npm install\` or \`npm run build\` in ${root}`);
  process.exit(1);
}
const { runCli } = await import(pathToFileURL(main).href);
process.exitCode = await runCli(process.argv.slice(2));
