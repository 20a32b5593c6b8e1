/**
 * `slipstream run <workflow.json>`: the baseline and the accelerated pipeline on the workflow's
 * prompts, compared frame by frame, written as out/<name>-<time>/ with a side-by-side GIF per
 * prompt, metrics.json and a self-contained report.html. The folder is assembled under a temporary
 * name and renamed at the end, so an interrupted run leaves no half-written report.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

import { psnr, ssim } from '../../core/src/metrics/index.js';
import { capabilities } from '../../core/src/native/index.js';
import { createProgress, type ProgressStream } from '../../core/src/progress/index.js';
import { WanModel, modelDenoiser } from '../../core/src/runtime/index.js';
import { parseJsonFile } from '../../core/src/schema/index.js';
import { profileSchema, type Profile } from '../../plugins/profile.js';
import { acceleratedWeights, buildAccelerators, describeAccelerators } from './accelerators.js';
import { AcceleratedRunner } from './pipeline.js';
import { concatFrames, encodeGif, renderReport, sideBySide, type PipelineSummary, type RunReport, type VideoResult } from './report/index.js';
import { LatentCodec, PromptTable, generateVideo } from './wan-mini.js';
import type { LoadedWorkflow } from './workflow.js';

export interface RunOptions {
  /** Where progress goes (stderr); null for none. */
  progress?: ProgressStream | null;
  /** Clock for the run folder's name; default now. */
  now?: Date;
}

export interface RunResult {
  dir: string;
  report: RunReport;
}

const PIXELS_PER_LATENT = 4;

function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

function slug(prompt: string): string {
  return prompt.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40) || 'prompt';
}

export async function runWorkflow(loaded: LoadedWorkflow, options: RunOptions = {}): Promise<RunResult> {
  const { workflow: w, modelDir } = loaded;
  const profile: Profile | undefined = loaded.profileFile === undefined ? undefined : await parseJsonFile(loaded.profileFile, profileSchema);
  const [table, codec] = await Promise.all([PromptTable.load(), LatentCodec.load()]);
  for (const p of w.prompts) table.context(p); // every word checked before the slow part

  const steps = w.sampler.steps;
  const accelerators = buildAccelerators(w.accelerate, profile, steps);
  const gen = { steps, cfg: w.sampler.cfg, shift: w.sampler.shift, solver: w.sampler.solver, frames: w.video.frames, size: w.video.size };
  const progress = createProgress({
    total: 2 * steps * w.prompts.length,
    label: `${w.name}: ${w.prompts.length} prompt(s) × (accelerated + baseline)`,
    unit: 'steps',
    ...(options.progress === null ? { enabled: false } : options.progress ? { stream: options.progress } : {}),
  });
  const onStep = () => progress.tick();

  // The accelerated pipeline first, so that the peak RSS after it is its own.
  const accModel = await WanModel.load(modelDir, acceleratedWeights(w.accelerate, modelDir));
  const runner = new AcceleratedRunner(accModel, accelerators);
  const accelerated: { frames: Uint8Array[]; seconds: number; blockMap: VideoResult['blockMap']; attentionSparsity: number[] }[] = [];
  let accSummary: PipelineSummary;
  try {
    for (const [i, prompt] of w.prompts.entries()) {
      runner.reset();
      const t0 = performance.now();
      const { frames } = await generateVideo(runner.denoiser(), accModel, table, codec, { ...gen, prompt, seed: w.seed + i, onStep });
      accelerated.push({ frames, seconds: (performance.now() - t0) / 1000, blockMap: runner.blockMap, attentionSparsity: runner.attentionSparsity });
    }
    accSummary = { name: 'accelerated', description: describeAccelerators(w.accelerate), weightBytes: accModel.weightBytes(), peakRssBytes: peakRss() };
  } finally {
    runner.free();
    accModel.free();
  }

  const baseModel = await WanModel.load(modelDir);
  const videos: VideoResult[] = [];
  const gifs: Record<string, Uint8Array> = {};
  let baseSummary: PipelineSummary;
  let parameters = 0;
  const px = w.video.size * PIXELS_PER_LATENT;
  try {
    for (const [i, prompt] of w.prompts.entries()) {
      const t0 = performance.now();
      const { frames } = await generateVideo(modelDenoiser(baseModel), baseModel, table, codec, { ...gen, prompt, seed: w.seed + i, onStep });
      const seconds = (performance.now() - t0) / 1000;
      const acc = accelerated[i]!;
      const pair = sideBySide(frames, acc.frames, px, px);
      const gif = `${String(i + 1).padStart(2, '0')}-${slug(prompt)}.gif`;
      gifs[gif] = encodeGif(pair.frames, pair.width, pair.height, { delayMs: 1000 / w.output.fps, scale: w.output.gifScale });
      const ssims = frames.map((f, j) => ssim(acc.frames[j]!, f, [px, px, 3], { dataRange: 255 }));
      videos.push({
        prompt,
        seed: w.seed + i,
        gif,
        baselineSeconds: seconds,
        acceleratedSeconds: acc.seconds,
        speedup: seconds / acc.seconds,
        psnr: psnr(concatFrames(acc.frames), concatFrames(frames), 255),
        ssim: ssims.reduce((a, b) => a + b, 0) / ssims.length,
        blockMap: acc.blockMap,
        ...(w.accelerate['sparse-attention'] ? { attentionSparsity: acc.attentionSparsity } : {}),
      });
    }
    baseSummary = { name: 'baseline', description: 'FP32 weights and activations, every block every step', weightBytes: baseModel.weightBytes(), peakRssBytes: peakRss() };
    parameters = baseModel.parameters;
  } finally {
    baseModel.free();
  }
  progress.finish();

  const sum = (f: (v: VideoResult) => number) => videos.reduce((a, v) => a + f(v), 0);
  const caps = capabilities();
  const now = options.now ?? new Date();
  const report: RunReport = {
    title: `Slipstream — ${w.name}`,
    createdAt: now.toISOString(),
    workflow: loaded.file,
    machine: { cpu: (os.cpus()[0]?.model ?? 'unknown').trim(), threads: caps.numThreads, isa: String(caps.isaActive), node: process.version },
    model: { name: path.basename(modelDir), parameters: parameters },
    sampler: { name: w.sampler.solver, steps, cfg: w.sampler.cfg, shift: w.sampler.shift, frames: w.video.frames, height: px, width: px },
    pipelines: [baseSummary, accSummary],
    videos,
    totals: {
      baselineSeconds: sum((v) => v.baselineSeconds),
      acceleratedSeconds: sum((v) => v.acceleratedSeconds),
      speedup: sum((v) => v.baselineSeconds) / sum((v) => v.acceleratedSeconds),
      meanPsnr: sum((v) => v.psnr) / videos.length,
      minPsnr: Math.min(...videos.map((v) => v.psnr)),
      meanSsim: sum((v) => v.ssim) / videos.length,
      weightReduction: baseSummary.weightBytes / accSummary.weightBytes,
    },
    settings: { accelerate: w.accelerate, profile: loaded.profileFile ?? null },
  };

  const stamp = now.toISOString().replace(/[:.]/g, '-').replace('T', '_').slice(0, 19);
  const dir = path.resolve(w.output.dir, `${w.name}-${stamp}`);
  const tmp = `${dir}.tmp-${process.pid}`;
  await mkdir(tmp, { recursive: true });
  try {
    for (const [name, bytes] of Object.entries(gifs)) await writeFile(path.join(tmp, name), bytes);
    await writeFile(path.join(tmp, 'metrics.json'), JSON.stringify(report, null, 2) + '\n');
    await writeFile(path.join(tmp, 'report.html'), renderReport(report, { gifs }));
    await rename(tmp, dir);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  return { dir, report };
}
