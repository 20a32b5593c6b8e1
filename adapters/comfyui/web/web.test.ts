/**
 * The frontend extension: its statistics and chart (no DOM), the committed bundle in step with the
 * sources, and the bundle registering itself with a stand-in of ComfyUI's frontend app (the real
 * frontend does not run here; the stand-in offers the calls the extension makes, as the 1.45.6
 * types declare them).
 */
import { readFile, writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { expect, it } from 'vitest';

import { chartSvg, StatsHistory, type RunStats } from './src/stats.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const cacheRun: RunStats = {
  node: 'SlipstreamDeltaCache', blocks_computed: 6, blocks_skipped: 2, seconds_saved_estimate: 1.25,
  per_step: [[0, 4, 0], [1, 2, 2]],
};
const attnRun: RunStats = { node: 'SlipstreamAttention', attention_calls: 6, attention_declined: 2, sparsity: 0.5, per_step: [[1, 0.4], [2, 0.6]] };

it('keeps the last run per node and charts both series against the step', () => {
  const h = new StatsHistory();
  h.add(cacheRun);
  h.add(attnRun);
  const s = h.series();
  expect(s.steps).toEqual([0, 1, 2]);
  expect(s.skipped).toEqual([0, 0.5, NaN]);
  expect(s.sparsity).toEqual([NaN, 0.4, 0.6]);
  expect(s.nvfp4).toEqual([NaN, NaN, NaN]);
  expect(h.badge('SlipstreamDeltaCache')).toBe('skipped 2/8 blocks, ~1.3 s saved');
  expect(h.badge('SlipstreamAttention')).toBe('6 calls, sparsity 50%');
  const svg = chartSvg(s, 280, 160);
  expect(svg).not.toContain('NVFP4 blocks');
  // Two polylines; the skipped series has 2 points (step 2 missing), sparsity 2 (step 0 missing).
  expect(svg.match(/<polyline/g)).toHaveLength(2);
  expect(svg).toContain('points="24.0,136.0 140.0,80.0"');
  expect(svg).toContain('points="140.0,91.2 256.0,68.8"');
});

it('shows the precision mix of a mixed-precision run, and a calibration run as such', () => {
  const h = new StatsHistory();
  h.add({ node: 'SlipstreamMixedPrecision', blocks_by_precision: { nvfp4: 3, int8: 5, full: 0 }, samples: 0,
    per_step: [[0, { nvfp4: 0, int8: 4, full: 0 }], [1, { nvfp4: 3, int8: 1, full: 0 }]] });
  expect(h.badge('SlipstreamMixedPrecision')).toBe('blocks NVFP4 3, INT8 5');
  expect(h.series().nvfp4).toEqual([0, 0.75]);
  expect(chartSvg(h.series())).toContain('NVFP4 blocks');
  h.add({ node: 'SlipstreamMixedPrecision', blocks_by_precision: { nvfp4: 0, int8: 0, full: 8 }, samples: 6, per_step: [] });
  expect(h.badge('SlipstreamMixedPrecision')).toBe('calibrated on 6 (Γ, error) pairs');
});

it('keeps the committed bundle in step with the sources (run `npm run build:web`)', async () => {
  const { bundleText } = await import(pathToFileURL(path.join(root, 'scripts', 'web-bundle.js')).href);
  expect(await readFile(path.join(root, 'adapters/comfyui/web/dist/slipstream.js'), 'utf8')).toBe(await bundleText(root));
});

it('registers with the app, listens for slipstream.stats and draws the sidebar chart', async () => {
  const calls: Record<string, unknown[]> = { registerExtension: [], listeners: [], tabs: [] };
  const listeners = new Map<string, (e: { detail: unknown }) => void>();
  const app = {
    registerExtension: (ext: unknown) => calls.registerExtension.push(ext),
    api: { addCustomEventListener: (type: string, fn: (e: { detail: unknown }) => void) => listeners.set(type, fn) },
    extensionManager: {
      registerSidebarTab: (tab: unknown) => calls.tabs.push(tab),
      setting: { get: () => true },
    },
    graph: { setDirtyCanvas: () => {} },
  };
  (globalThis as { window?: unknown }).window = { comfyAPI: { app: { app } } };
  // A copy under a fresh name: each import of the bundle runs it once.
  const copy = path.join(await mkdtemp(path.join(tmpdir(), 'slip-web-')), 'slipstream.js');
  await writeFile(copy, await readFile(path.join(root, 'adapters/comfyui/web/dist/slipstream.js')));
  await import(pathToFileURL(copy).href);
  expect(calls.registerExtension).toHaveLength(1);
  const ext = calls.registerExtension[0] as { name: string; settings: { id: string }[]; setup(a: unknown): void; nodeCreated(n: unknown): void };
  expect(ext.name).toBe('slipstream');
  expect(ext.settings.map((s) => s.id)).toEqual(['Slipstream.ShowNodeStats']);
  ext.setup(app);
  const tab = calls.tabs[0] as { id: string; type: string; render(el: { innerHTML: string }): void };
  expect(tab).toMatchObject({ id: 'slipstream', type: 'custom' });
  const panel = { innerHTML: '' };
  tab.render(panel);
  expect(panel.innerHTML).toContain('Run a workflow');
  listeners.get('slipstream.stats')!({ detail: cacheRun });
  listeners.get('slipstream.stats')!({ detail: { node: 'Other' } }); // not ours: ignored
  expect(panel.innerHTML).toContain('<polyline');
  expect(panel.innerHTML).toContain('skipped 2/8 blocks');
  // Our nodes get a badge under the title; other nodes are left alone.
  const drawn: string[] = [];
  const ctx = { save() {}, restore() {}, fillText: (t: string) => drawn.push(t), fillStyle: '', font: '' };
  const ours = { comfyClass: 'SlipstreamDeltaCache', size: [300, 100], onDrawForeground: undefined as undefined | ((c: unknown) => void) };
  const theirs = { comfyClass: 'KSampler', size: [300, 100], onDrawForeground: undefined };
  ext.nodeCreated(ours);
  ext.nodeCreated(theirs);
  ours.onDrawForeground!.call(ours, ctx);
  expect(drawn).toEqual(['skipped 2/8 blocks, ~1.3 s saved']);
  expect(theirs.onDrawForeground).toBeUndefined();
});
