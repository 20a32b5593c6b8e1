import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { expect, it } from 'vitest';

import { exampleWorkflows } from './examples.js';
import { accelerate, type ApiWorkflow, type UiWorkflow } from './workflow.js';

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../workflows/comfyui');

it('keeps workflows/comfyui/ in step with examples.ts (run `npm run schemas`), accelerated and idempotent', () => {
  const all = exampleWorkflows();
  expect(all.map((w) => w.file)).toEqual([
    'wan2.1-t2v-1.3b.api.json', 'wan2.1-t2v-1.3b.ui.json', 'wan2.1-t2v-14b.api.json', 'wan2.1-t2v-14b.ui.json',
    'flux1-dev.api.json', 'flux1-dev.ui.json',
  ]);
  for (const { file, workflow } of all) {
    expect(JSON.parse(readFileSync(path.join(dir, file), 'utf8')), file).toEqual(workflow);
    expect(accelerate(workflow, undefined, file), file).toEqual(workflow);
    const types = file.endsWith('.api.json')
      ? Object.values(workflow as ApiWorkflow).map((n) => n.class_type)
      : (workflow as UiWorkflow).nodes.map((n) => n.type);
    expect(types.filter((t) => t.startsWith('Slipstream')), file).toEqual(['SlipstreamAttention', 'SlipstreamDeltaCache']);
  }
});
