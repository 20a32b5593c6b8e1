import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { expect, it } from 'vitest';

import { comfyManifests, renderComfyManifests } from './manifests.js';

const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'slipstream_comfy/manifests.json');

it('keeps the node pack\'s manifests.json in step with the plugin manifests (run `npm run schemas`)', () => {
  expect(readFileSync(file, 'utf8')).toBe(renderComfyManifests());
});

it('gives every ComfyUI plugin parameter a default and a description, which become the widget\'s', () => {
  const { plugins, nodes } = comfyManifests();
  for (const m of plugins) {
    const props = m.params.properties as Record<string, { default?: unknown; description?: string }>;
    for (const [name, p] of Object.entries(props)) {
      expect(p.description, `${m.id}.${name}`).toBeTruthy();
      if (!(m.id === 'mixed-precision' && ['gammaThreshold', 'checkpoint'].includes(name)))
        expect(p.default, `${m.id}.${name}`).not.toBeUndefined();
    }
  }
  for (const n of nodes.filter((x) => x.plugin !== null)) {
    const plugin = plugins.find((m) => m.id === n.plugin);
    expect(plugin, n.id).toBeDefined();
    const keys = Object.keys(plugin!.params.properties as object);
    for (const k of n.params ?? []) expect(keys, `${n.id}.${k}`).toContain(k);
  }
});
