import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { RunReport } from './report/index.js';
import { runWorkflow } from './run.js';
import { loadWorkflow } from './workflow.js';

const MODEL_DIR = fileURLToPath(new URL('../../models/wan-mini', import.meta.url));

let tmp: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'slipstream-run-'));
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function workflowFile(accelerate: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<string> {
  const file = path.join(tmp, `wf-${Math.random().toString(36).slice(2)}.json`);
  const w = {
    name: 'tiny',
    model: MODEL_DIR,
    prompts: ['red circle right'],
    sampler: { steps: 8 },
    video: { frames: 2, size: 8 },
    accelerate,
    output: { dir: path.join(tmp, 'out'), gifScale: 1 },
    ...extra,
  };
  await writeFile(file, JSON.stringify(w));
  return file;
}

describe('slipstream run (real model, real files)', () => {
  it('writes the GIF, metrics.json and report.html of both pipelines into a fresh run folder', async () => {
    const file = await workflowFile({ 'delta-cache': { threshold: 0.5, warmupSteps: 2, finalSteps: 1 }, 'mixed-precision': { route: 'int8' } });
    const { dir, report } = await runWorkflow(await loadWorkflow(file), { progress: null, now: new Date('2026-01-02T03:04:05Z') });
    expect(path.basename(dir)).toBe('tiny-2026-01-02_03-04-05');
    expect((await readdir(dir)).sort()).toEqual(['01-red-circle-right.gif', 'metrics.json', 'report.html']);
    expect(await readdir(path.dirname(dir))).toEqual([path.basename(dir)]); // no temporary folder left
    const gif = await readFile(path.join(dir, '01-red-circle-right.gif'));
    expect(gif.subarray(0, 6).toString('latin1')).toBe('GIF89a');
    const metrics = JSON.parse(await readFile(path.join(dir, 'metrics.json'), 'utf8')) as RunReport;
    expect(metrics).toEqual(JSON.parse(JSON.stringify(report)));
    const v = metrics.videos[0]!;
    // 8 steps × 8 blocks; warm-up and the last step computed, so at most steps 2..6 skip.
    expect(v.blockMap).toHaveLength(8);
    expect(v.blockMap.every((row) => row.length === 8)).toBe(true);
    expect(v.blockMap.slice(0, 2).flat().includes('skip')).toBe(false);
    expect(v.blockMap[7]!.includes('skip')).toBe(false);
    expect(v.blockMap.flat().every((a) => a === 'skip' || a === 'int8' || a === 'mixed')).toBe(true);
    expect(Number.isFinite(v.psnr) && v.psnr > 10).toBe(true);
    expect(v.ssim).toBeGreaterThan(0);
    expect(v.ssim).toBeLessThanOrEqual(1);
    const [base, acc] = metrics.pipelines;
    expect(base!.name).toBe('baseline');
    expect(acc!.name).toBe('accelerated');
    // FP32 block weights against one NVFP4 copy (4.5 bits per weight): well over 3× smaller.
    expect(metrics.totals.weightReduction).toBeGreaterThan(3);
    const html = await readFile(path.join(dir, 'report.html'), 'utf8');
    expect(html).toContain('data:image/gif;base64,');
    expect(html).toContain('red circle right');
  });

  it('refuses a workflow whose plugins need a profile it does not name, before writing anything', async () => {
    const file = await workflowFile({ 'reference-caches': { method: 'teacache', threshold: 0.1 } }, { output: { dir: path.join(tmp, 'never') } });
    await expect(runWorkflow(await loadWorkflow(file), { progress: null })).rejects.toThrow(/calibration profile .* teacache/);
    await expect(readdir(path.join(tmp, 'never'))).rejects.toThrow(/ENOENT/);
  });

  it('refuses prompts with words the model does not know, naming them', async () => {
    const file = await workflowFile({}, { prompts: ['purple circle right'] });
    await expect(runWorkflow(await loadWorkflow(file), { progress: null })).rejects.toThrow(/"purple"/);
  });
});
