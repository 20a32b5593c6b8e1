/**
 * The diffusion benchmark (`npm run bench -- diffusion`): every acceleration of the embedded
 * runtime on the same prompts, seeds and steps, against the FP32 baseline's own frames, plus the
 * honesty check of that baseline against PyTorch running the same weights with the same sampler.
 *
 * Timing: per configuration, the wall time of all its videos; the FP32 baseline is timed at the
 * start and again at the end and the mean of the two is the reference (the machine drifts). The
 * comparison with PyTorch interleaves the two runtimes (a call batch or a video of one, then the
 * same of the other, several rounds) and compares medians, so drift hits both alike.
 * Quality: PSNR and SSIM of the decoded 8-bit frames against the baseline's, over all videos.
 * The calibration profile is models/wan-mini/profile.json (made by `slipstream calibrate` on
 * prompts other than these). Writes bench/diffusion.md atomically. Never asserts.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

import { acceleratedWeights, buildAccelerators, describeAccelerators } from '../adapters/embedded/accelerators.js';
import { AcceleratedRunner } from '../adapters/embedded/pipeline.js';
import { concatFrames } from '../adapters/embedded/report/index.js';
import { LatentCodec, PromptTable, WAN_MINI_DIR, generateVideo } from '../adapters/embedded/wan-mini.js';
import { workflowSchema, type Workflow } from '../adapters/embedded/workflow.js';
import { psnr, ssim, summarize } from '../core/src/metrics/index.js';
import { capabilities, packageRoot } from '../core/src/native/index.js';
import { GaussianNoise, WanModel, modelDenoiser, type Denoiser } from '../core/src/runtime/index.js';
import { parseJsonFile } from '../core/src/schema/index.js';
import { Tensor } from '../core/src/tensor/index.js';
import { profileSchema } from '../plugins/profile.js';

const STEPS = 30;
const PROMPTS = ['red circle right', 'blue square rotate', 'yellow triangle down'];
const VIDEO = { frames: 8, size: 16 };
const PX = VIDEO.size * 4;

/** bench/diffusion_torch.py as a peer process: one JSON request line, one JSON answer line. */
class TorchPeer {
  readonly #proc: ChildProcessWithoutNullStreams;
  readonly #lines: AsyncIterator<string>;
  #stderr = '';

  private constructor(proc: ChildProcessWithoutNullStreams) {
    this.#proc = proc;
    proc.stderr.on('data', (d: Buffer) => (this.#stderr += d.toString()));
    this.#lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  }

  static start(threads: number): TorchPeer {
    const root = packageRoot();
    const env = spawnSync(process.execPath, [path.join(root, 'scripts', 'python-env.js')], { stdio: 'inherit' });
    if (env.status !== 0) throw new Error('could not prepare the Python venv');
    const py = path.join(root, '.venv', 'bin', 'python');
    return new TorchPeer(spawn(py, [path.join(root, 'bench', 'diffusion_torch.py'), '--threads', String(threads), '--steps', String(STEPS)]));
  }

  async ask<T>(req: Record<string, unknown>): Promise<T> {
    this.#proc.stdin.write(`${JSON.stringify(req)}\n`);
    const line = await this.#lines.next();
    if (line.done) throw new Error(`bench/diffusion_torch.py ended early:\n${this.#stderr}`);
    const r = JSON.parse(line.value) as T & { error?: string };
    if (r.error !== undefined) throw new Error(`bench/diffusion_torch.py: ${r.error}`);
    return r;
  }

  close(): void {
    this.#proc.stdin.end();
  }
}

const median = (xs: number[]) => summarize(xs).median;

type Accelerate = Workflow['accelerate'];

const GPTQ = 'nvfp4/model.safetensors';
const TDC_DEFAULT = { threshold: 0.25, maxSkips: 3, purify: true };

/** The table's rows: [group, label, accelerate section as a user would write it]. */
const CONFIGS: [string, string, Record<string, unknown>][] = [
  ['tdc', 'TDC τ=0.03', { 'delta-cache': { threshold: 0.03, purify: false } }],
  ['tdc', 'TDC τ=0.06', { 'delta-cache': { threshold: 0.06, purify: false } }],
  ['tdc', 'TDC τ=0.12', { 'delta-cache': { threshold: 0.12, purify: false } }],
  ['tdc', 'TDC τ=0.25 N_max=3', { 'delta-cache': { threshold: 0.25, maxSkips: 3, purify: false } }],
  ['anchor', 'TeaCache δ=0.3', { 'reference-caches': { method: 'teacache', threshold: 0.3 } }],
  ['anchor', 'TeaCache δ=0.6', { 'reference-caches': { method: 'teacache', threshold: 0.6 } }],
  ['anchor', 'First Block Cache 0.05', { 'reference-caches': { method: 'first-block-cache', threshold: 0.05 } }],
  ['anchor', 'First Block Cache 0.10', { 'reference-caches': { method: 'first-block-cache', threshold: 0.1 } }],
  ['anchor', 'MagCache δ=0.06 K=2', { 'reference-caches': { method: 'magcache', threshold: 0.06, maxSkips: 2 } }],
  ['anchor', 'MagCache δ=0.12 K=4', { 'reference-caches': { method: 'magcache', threshold: 0.12, maxSkips: 4 } }],
  ['anchor', 'EasyCache τ=0.05', { 'reference-caches': { method: 'easycache', threshold: 0.05 } }],
  ['anchor', 'EasyCache τ=0.1', { 'reference-caches': { method: 'easycache', threshold: 0.1 } }],
  ['precision', 'NVFP4 weights, FP32 activations', { 'mixed-precision': { route: 'full' } }],
  ['precision', 'NVFP4 weights, INT8 activations (W4A8)', { 'mixed-precision': { route: 'int8' } }],
  ['precision', 'NVFP4 weights, NVFP4 activations (W4A4)', { 'mixed-precision': { route: 'nvfp4' } }],
  ['precision', 'DMPQ alone', { 'mixed-precision': { route: 'dmpq' } }],
  ['precision', 'GPTQ NVFP4 weights, INT8 activations (W4A8)', { 'mixed-precision': { route: 'int8', checkpoint: GPTQ } }],
  ['precision', 'GPTQ NVFP4 weights, BF16 activations (W4A16)', { 'mixed-precision': { route: 'bf16', checkpoint: GPTQ } }],
  ['precision', 'GPTQ NVFP4 weights, DMPQ alone', { 'mixed-precision': { route: 'dmpq', checkpoint: GPTQ } }],
  ['combined', 'TDC + PDR on W4A8 (route int8, GPTQ)', { 'mixed-precision': { route: 'int8', checkpoint: GPTQ }, 'delta-cache': TDC_DEFAULT }],
  ['combined', 'DMPQ + TDC, no PDR (naive, GPTQ)', { 'mixed-precision': { route: 'dmpq', checkpoint: GPTQ }, 'delta-cache': { ...TDC_DEFAULT, purify: false } }],
  ['combined', 'DMPQ + TDC + PDR (GPTQ)', { 'mixed-precision': { route: 'dmpq', checkpoint: GPTQ }, 'delta-cache': TDC_DEFAULT }],
  ['combined', 'DMPQ + TDC + PDR, outlier layers FP32 not BF16 (GPTQ)', { 'mixed-precision': { route: 'dmpq', checkpoint: GPTQ }, 'delta-cache': { ...TDC_DEFAULT, purifyPrecision: 'full' } }],
  ['combined', 'DMPQ + TDC + PDR, round-to-nearest weights', { 'mixed-precision': { route: 'dmpq' }, 'delta-cache': TDC_DEFAULT }],
  ['combined', 'DMPQ + TDC + PDR + sparse FP32 attention (GPTQ)', { 'mixed-precision': { route: 'dmpq', checkpoint: GPTQ }, 'delta-cache': TDC_DEFAULT, 'sparse-attention': { topk: 0.5, precision: 'fp32' } }],
  ['combined', 'DMPQ + TDC + PDR + sparse INT8/BF16 attention (GPTQ)', { 'mixed-precision': { route: 'dmpq', checkpoint: GPTQ }, 'delta-cache': TDC_DEFAULT, 'sparse-attention': { topk: 0.5 } }],
  ['combined', 'everything (workflows/default.json)', {}],
];

interface Row {
  group: string;
  label: string;
  description: string;
  seconds: number;
  psnr: number;
  minPsnr: number;
  ssim: number;
  skipped: number;
  weightBytes: number;
}

export async function runDiffusionBench(opts: { out: string }): Promise<void> {
  const root = packageRoot();
  const caps = capabilities();
  const profile = await parseJsonFile(path.join(WAN_MINI_DIR, 'profile.json'), profileSchema);
  const defaults = await parseJsonFile(path.join(root, 'workflows', 'default.json'), workflowSchema);
  const [table, codec] = await Promise.all([PromptTable.load(), LatentCodec.load()]);
  const fp32 = await WanModel.load(WAN_MINI_DIR);
  const nvfp4 = await WanModel.load(WAN_MINI_DIR, { weights: 'nvfp4' });
  const gptq = await WanModel.load(WAN_MINI_DIR, { weights: 'nvfp4', nvfp4Checkpoint: path.join(WAN_MINI_DIR, GPTQ) });
  const gen = { steps: STEPS, cfg: 5, shift: 1, solver: 'euler' as const, ...VIDEO };
  const runAll = async (denoise: Denoiser, model: WanModel, before?: () => void) => {
    const frames: Uint8Array[][] = [];
    const t0 = performance.now();
    for (const [i, prompt] of PROMPTS.entries()) {
      before?.();
      frames.push((await generateVideo(denoise, model, table, codec, { ...gen, prompt, seed: i })).frames);
    }
    return { frames, seconds: (performance.now() - t0) / 1000 };
  };
  const torch = TorchPeer.start(caps.numThreads);
  try {
    // The honesty check first: the FP32 runtime and PyTorch, interleaved (3 rounds of 15 calls
    // each, then 2 rounds of the three videos each), medians compared.
    const info = await torch.ask<{ torch: string; threads: number }>({ op: 'info' });
    const x = new GaussianNoise(1).tensor([2, 16, 8, 16, 16]);
    const t = new Tensor('F32', [2], Float32Array.from([500, 500]));
    const c2 = Tensor.zeros('F32', [2, 8, 4096]);
    c2.data.set(table.context('red circle right').data);
    for (let i = 0; i < 3; i++) fp32.forwardSync(x, t, c2);
    const calls = { ours: [] as number[], torch: [] as number[] };
    const videos = { ours: [] as number[], torch: [] as number[] };
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 15; i++) {
        const t0 = performance.now();
        fp32.forwardSync(x, t, c2);
        calls.ours.push((performance.now() - t0) / 1000);
      }
      calls.torch.push(...(await torch.ask<{ seconds: number[] }>({ op: 'calls', n: 15 })).seconds);
    }
    for (let round = 0; round < 2; round++)
      for (const [i, prompt] of PROMPTS.entries()) {
        const t0 = performance.now();
        await generateVideo(modelDenoiser(fp32), fp32, table, codec, { ...gen, prompt, seed: i });
        videos.ours.push((performance.now() - t0) / 1000);
        videos.torch.push((await torch.ask<{ seconds: number }>({ op: 'video', prompt, seed: i })).seconds);
      }

    const base = await runAll(modelDenoiser(fp32), fp32);
    const rows: Row[] = [];
    for (const [group, label, section] of CONFIGS) {
      const accelerate: Accelerate =
        Object.keys(section).length === 0 ? defaults.accelerate : workflowSchema.parse({ name: 'bench', model: '.', prompts: PROMPTS, accelerate: section }).accelerate;
      const load = acceleratedWeights(accelerate, WAN_MINI_DIR);
      const model = load.weights === 'fp32' ? fp32 : load.nvfp4Checkpoint !== undefined ? gptq : nvfp4;
      const runner = new AcceleratedRunner(model, buildAccelerators(accelerate, profile, STEPS));
      let skipped = 0, cells = 0;
      try {
        const r = await runAll(runner.denoiser(), model, () => {
          if (runner.blockMap.length) {
            skipped += runner.blockMap.flat().filter((a) => a === 'skip').length;
            cells += runner.blockMap.flat().length;
          }
          runner.reset();
        });
        skipped += runner.blockMap.flat().filter((a) => a === 'skip').length;
        cells += runner.blockMap.flat().length;
        const psnrs = r.frames.map((f, i) => psnr(concatFrames(f), concatFrames(base.frames[i]!), 255));
        const ssims = r.frames.flatMap((f, i) => f.map((fr, j) => ssim(fr, base.frames[i]![j]!, [PX, PX, 3], { dataRange: 255 })));
        rows.push({
          group,
          label,
          description: describeAccelerators(accelerate),
          seconds: r.seconds,
          psnr: psnrs.reduce((a, b) => a + b, 0) / psnrs.length,
          minPsnr: Math.min(...psnrs),
          ssim: ssims.reduce((a, b) => a + b, 0) / ssims.length,
          skipped: skipped / cells,
          weightBytes: model.weightBytes(),
        });
      } finally {
        runner.free();
      }
    }
    const baseEnd = await runAll(modelDenoiser(fp32), fp32);
    const baseSeconds = (base.seconds + baseEnd.seconds) / 2;
    const torchVideo = median(videos.torch), oursVideo = median(videos.ours);
    const torchVideos = torchVideo * PROMPTS.length;

    const fmtRow = (r: Row) =>
      `| ${r.label} | ${r.seconds.toFixed(2)} | ${(baseSeconds / r.seconds).toFixed(2)}× | ${(torchVideos / r.seconds).toFixed(2)}× | ${r.psnr.toFixed(2)} | ${r.minPsnr.toFixed(2)} | ${r.ssim.toFixed(4)} | ${(100 * r.skipped).toFixed(0)}% | ${(r.weightBytes / 2 ** 20).toFixed(1)} |`;
    const header = [
      `| configuration | s (${PROMPTS.length} videos) | vs FP32 | vs PyTorch | PSNR dB | min PSNR | SSIM | blocks skipped | weights MiB |`,
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ];
    const group = (g: string) => [...header, ...rows.filter((r) => r.group === g).map(fmtRow)];
    const tdcRows = rows.filter((r) => r.group === 'tdc');
    const anchorRows = rows.filter((r) => r.group === 'anchor');
    // At matched speedup: for each TDC row, the anchor row whose speedup is nearest.
    const matched = tdcRows.map((r) => {
      const a = [...anchorRows].sort((x, y) => Math.abs(x.seconds - r.seconds) - Math.abs(y.seconds - r.seconds))[0]!;
      return `| ${r.label} | ${(baseSeconds / r.seconds).toFixed(2)}× | ${r.psnr.toFixed(2)} | ${a.label} | ${(baseSeconds / a.seconds).toFixed(2)}× | ${a.psnr.toFixed(2)} | ${(r.psnr - a.psnr).toFixed(2)} |`;
    });
    const naive = rows.find((r) => r.label.startsWith('DMPQ + TDC, no PDR'))!;
    const pdr = rows.find((r) => r.label === 'DMPQ + TDC + PDR (GPTQ)')!;
    const all = rows.find((r) => r.label.startsWith('everything'))!;
    const lines = [
      '# Diffusion benchmark (CPU)',
      '',
      'Generated by `npm run bench -- diffusion` (bench/diffusion.ts + bench/diffusion_torch.py); do not edit by hand.',
      '',
      `- Machine: \`${(os.cpus()[0]?.model ?? 'unknown').trim()}\`, ${caps.numThreads} threads for both runtimes, ISA \`${caps.isaActive}\`, torch ${info.torch} (${info.threads} threads); ${new Date().toISOString().slice(0, 10)}`,
      `- Model: models/wan-mini (${(fp32.parameters / 1e6).toFixed(1)}M parameters), ${VIDEO.frames}×${VIDEO.size}×${VIDEO.size} latents (512 tokens), CFG 5 in one batch of 2, Euler, ${STEPS} steps, prompts ${PROMPTS.map((p) => `"${p}"`).join(', ')} with seeds 0, 1, 2.`,
      '- Times: wall seconds for all three videos. The FP32 reference is the mean of a run at the start and one at the end',
      `  (${base.seconds.toFixed(2)} s and ${baseEnd.seconds.toFixed(2)} s). PSNR/SSIM: decoded 8-bit frames against the FP32 baseline's, mean over videos.`,
      '- Profile: models/wan-mini/profile.json (`slipstream calibrate`, on four prompts not used here): DMPQ threshold, TeaCache polynomial, MagCache ratios.',
      '',
      '## FP32 baseline against PyTorch',
      '',
      'Interleaved in one run: 3 rounds of 15 model calls (B=2) of each runtime, then 2 rounds of the three videos of each; medians.',
      'The everything-on row is its own run of the three videos (the Combined table), against the PyTorch median.',
      '',
      '| runtime | s per call | s per video | vs PyTorch per call | vs PyTorch per video |',
      '|---|---:|---:|---:|---:|',
      `| PyTorch (models/wan-mini/model.py) | ${median(calls.torch).toFixed(3)} | ${torchVideo.toFixed(2)} | 1.00× | 1.00× |`,
      `| Slipstream native FP32 | ${median(calls.ours).toFixed(3)} | ${oursVideo.toFixed(2)} | ${(median(calls.torch) / median(calls.ours)).toFixed(2)}× | ${(torchVideo / oursVideo).toFixed(2)}× |`,
      `| Slipstream, everything on (workflows/default.json) | | ${(all.seconds / PROMPTS.length).toFixed(2)} | | ${(torchVideos / all.seconds).toFixed(2)}× |`,
      '',
      '## Temporal Delta Cache alone (FP32 weights)',
      '',
      ...group('tdc'),
      '',
      '## Reference caches, two thresholds each (FP32 weights)',
      '',
      ...group('anchor'),
      '',
      '## Precision alone (weights stored once in NVFP4 behind a Hadamard-128 rotation; round-to-nearest at load, or GPTQ offline)',
      '',
      ...group('precision'),
      '',
      '## Combined',
      '',
      ...group('combined'),
      '',
      '## TDC against the nearest reference cache at matched speedup',
      '',
      '| TDC | speedup | PSNR | nearest reference cache | speedup | PSNR | TDC − reference dB |',
      '|---|---:|---:|---|---:|---:|---:|',
      ...matched,
      '',
      '## PDR against naive DMPQ + TDC',
      '',
      `PSNR ${pdr.psnr.toFixed(2)} dB with PDR against ${naive.psnr.toFixed(2)} dB without (${(pdr.psnr - naive.psnr).toFixed(2)} dB), at ` +
        `${(baseSeconds / pdr.seconds).toFixed(2)}× and ${(baseSeconds / naive.seconds).toFixed(2)}× respectively.`,
      '',
    ];
    const tmp = `${opts.out}.tmp-${process.pid}`;
    writeFileSync(tmp, lines.join('\n'));
    renameSync(tmp, opts.out);
  } finally {
    torch.close();
    fp32.free();
    nvfp4.free();
    gptq.free();
  }
}
