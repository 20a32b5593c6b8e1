/**
 * The linear benchmark (`npm run bench -- linear`): GOP/s of LinearPlan.run for FP32, W8A8,
 * W4A16, NVFP4 W4A4 and NVFP4 W4A8 at the LLM-sized shapes and a small video DiT's (dim 256,
 * FFN 1024, 1024 tokens per call), next to the machine's measured and derived vector peaks.
 * Writes a Markdown table (atomically: temp file + rename). Never asserts.
 *
 * GOP/s = 2·M·N·K / median time. Plans are made once per (format, shape); each timed call is one
 * runSync, which includes the activation quantization (W8A8, W4A4), packing A, the product and
 * the epilogue, plus allocating y. Weights are random codes + scales written directly (no
 * quantize() call), so the numbers do not depend on quantization speed.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { LinearPlan, measurePeak, type QuantizedWeight } from '../core/src/linear/index.js';
import { cpuModel, timeIt } from '../core/src/metrics/index.js';
import { capabilities } from '../core/src/native/index.js';
import { Tensor } from '../core/src/tensor/index.js';

/** In table order. */
const SHAPES: readonly [m: number, k: number, n: number][] = [
  [2048, 4096, 4096], [1024, 256, 256], [1024, 256, 1024], [1024, 1024, 256], [128, 4096, 4096], [1, 4096, 4096],
];
const FORMATS = ['FP32', 'W8A8', 'W4A16', 'NVFP4 W4A4', 'NVFP4 W4A8'] as const;
type Format = (typeof FORMATS)[number];
/** Timed calls per shape: at least 5, more where a call is short. About 2 minutes in all on 2 cores. */
const ITERATIONS: Record<number, number> = { 1: 30, 128: 15, 1024: 15, 2048: 5 };
/** The activations option of each format's plan. */
const ACTIVATIONS: Record<Format, 'dynamic' | 'int8' | undefined> = {
  FP32: undefined, W8A8: 'dynamic', W4A16: undefined, 'NVFP4 W4A4': 'dynamic', 'NVFP4 W4A8': 'int8',
};
/** The peak is the best of PEAK_RUNS runs of PEAK_SECONDS: a ceiling, so noise only lowers it. */
const PEAK_SECONDS = 1;
const PEAK_RUNS = 3;

// xorshift32: fast, deterministic fill (Math.random is slow enough to matter at 16M elements).
function filler(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}
const next = filler(0x51ab);
const unit = () => next() / 2 ** 31 - 1;

function f32(shape: number[]): Tensor<'F32'> {
  const t = Tensor.zeros('F32', shape);
  for (let i = 0; i < t.numel; i++) t.data[i] = unit();
  return t;
}

function bytes<D extends 'U8' | 'I8' | 'F8_E4M3'>(dtype: D, shape: number[], pick: () => number): Tensor<D> {
  const t = Tensor.zeros(dtype, shape);
  for (let i = 0; i < t.numel; i++) t.data[i] = pick();
  return t;
}

function weight(format: Format, n: number, k: number): QuantizedWeight | Tensor {
  switch (format) {
    case 'FP32':
      return f32([n, k]);
    case 'W8A8': {
      const scales = Tensor.zeros('F32', [n, 1]);
      scales.data.fill(0.01);
      return { format: 'INT8', codes: bytes('I8', [n, k], () => (next() % 255) - 127), scales };
    }
    case 'W4A16': {
      const codes = new Tensor('I32', [n, k / 8], new Int32Array(bytes('U8', [n, k / 2], () => next() & 255).data.buffer));
      const scales = Tensor.zeros('F32', [n, k / 128]);
      scales.data.fill(0.01);
      return { format: 'INT4', codes, scales };
    }
    case 'NVFP4 W4A4':
    case 'NVFP4 W4A8':
      return {
        format: 'NVFP4',
        codes: bytes('U8', [n, k / 2], () => next() & 255),
        scales: bytes('F8_E4M3', [n, k / 16], () => 0x30 + (next() % 8)),
        global: Tensor.fromArray('F32', [1], [100]),
      };
  }
}

function cpuGHz(): number {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('cpu MHz'));
    if (line) return Number(line.split(':')[1]) / 1000;
  } catch {
    // fall through
  }
  return (os.cpus()[0]?.speed ?? 0) / 1000;
}

const fmt = (v: number, digits = 1) => (Number.isFinite(v) ? v.toFixed(digits) : 'n/a');

async function peak(kind: 'fp32-fma' | 'int8-vnni'): Promise<number> {
  try {
    let best = 0;
    for (let i = 0; i < PEAK_RUNS; i++) best = Math.max(best, await measurePeak(kind, PEAK_SECONDS));
    return best;
  } catch (e) {
    if ((e as { code?: string }).code === 'SLIP_E_UNSUPPORTED') return NaN;
    throw e;
  }
}

function writeAtomically(out: string, text: string): void {
  mkdirSync(path.dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, out);
}

export async function runLinearBench(opts: { out: string }): Promise<void> {
  const started = Date.now();
  const load0 = os.loadavg()[0];
  const caps = capabilities();
  const threads = caps.numThreads;
  const log = (s: string) => process.stderr.write(`bench linear: ${s}\n`);

  const fp32Peak = await peak('fp32-fma');
  const int8Peak = await peak('int8-vnni');
  log(`peaks ${fmt(fp32Peak / 1e9)} GFLOP/s FP32, ${fmt(int8Peak / 1e9)} GOP/s INT8`);

  // GOP/s by shape and format. One weight per (format, N, K) serves every M.
  const gops = new Map<string, number>();
  for (const format of FORMATS) {
    const weights = new Map<string, ReturnType<typeof weight>>();
    for (const [m, k, n] of SHAPES) {
      if (!weights.has(`${n} ${k}`)) weights.set(`${n} ${k}`, weight(format, n, k));
      const activations = ACTIVATIONS[format];
      const plan = LinearPlan.create(weights.get(`${n} ${k}`)!, activations ? { activations } : {});
      try {
        const x = f32([m, k]);
        const stats = await timeIt(() => plan.runSync(x), { warmup: 1, iterations: ITERATIONS[m] ?? 5 });
        const g = (2 * m * n * k) / (stats.median / 1e3) / 1e9;
        gops.set(`${format} ${m} ${k} ${n}`, g);
        log(`${format} M=${m} K=${k} N=${n}: ${fmt(stats.median, 2)} ms, ${fmt(g)} GOP/s`);
      } finally {
        plan.free();
      }
    }
  }

  const ghz = cpuGHz();
  const derived = threads * ghz * 2 * 16 * 2 * 1e9;
  const seconds = (Date.now() - started) / 1e3;
  const rows = SHAPES.map(([m, k, n]) => {
    const v = FORMATS.map((f) => gops.get(`${f} ${m} ${k} ${n}`) ?? NaN);
    const ratios = [v[1], v[3], v[4]].map((x) => fmt(x / v[0], 2));
    return `| ${m}, ${k}, ${n} | ${v.map((x) => fmt(x)).join(' | ')} | ${ratios.join(' | ')} | ${fmt((v[0] * 1e9) / fp32Peak, 2)} |`;
  });
  const text = `# Linear benchmark (CPU)

Generated by \`npm run bench -- linear\` (bench/linear.ts); do not edit by hand.

- Machine: \`${cpuModel()}\`, ${threads} pool threads (${os.cpus().length} logical CPUs), kernels at ISA level \`${caps.isaActive}\`, Node ${process.version}
- Date: ${new Date().toISOString().slice(0, 10)}; run took ${fmt(seconds, 0)} s; 1-minute load average ${fmt(load0, 2)} at the start, ${fmt(os.loadavg()[0], 2)} at the end
  (a load above the thread count means the machine was shared and the numbers are low)

GOP/s = 2·M·N·K / median time of \`LinearPlan.runSync\` (plan made once; each timed call includes
the activation quantization of W8A8, W4A4 and W4A8, packing, the product and the epilogue). Medians of
${Object.entries(ITERATIONS).map(([m, it]) => `${it} (M=${m})`).join(', ')} timed calls after one warm-up, via \`timeIt\` (core/src/metrics).
Weights are random codes + scales: INT8 per-row scales (W8A8: dynamic per-token INT8
activations, int32 accumulation), INT4 group 128 (W4A16: FP32 activations), NVFP4 against dynamic
NVFP4 activations (W4A4) or per-token INT8 ones (W4A8, \`activations: 'int8'\`), both exact
integer dot products per 16-column group on AVX-512 VNNI (the FP32 product of the decoded operands
below it). M = 1024 with K, N in {256, 1024}: the linears of a small video DiT (dim 256, FFN 1024).

| M, K, N | FP32 | W8A8 | W4A16 | NVFP4 W4A4 | NVFP4 W4A8 | W8A8/FP32 | W4A4/FP32 | W4A8/FP32 | FP32/peak |
|---------|------|------|-------|------------|------------|-----------|-----------|-----------|-----------|
${rows.join('\n')}

Peaks (GOP/s, all ${threads} threads):

| peak | measured | derived |
|------|----------|---------|
| FP32 FMA (GFLOP/s) | ${fmt(fp32Peak / 1e9)} | ${fmt(derived / 1e9)} |
| INT8 VNNI (GOP/s) | ${fmt(int8Peak / 1e9)} | |

- Measured: \`slip_bench_peak\` — a register-only loop of 24 independent FMA (vpdpbusd) chains
  per thread, on every pool thread, best of ${PEAK_RUNS} runs of ${PEAK_SECONDS} s; FP32 counts 16 lanes × 2 flop per FMA, INT8
  16 lanes × 4 MACs × 2 per vpdpbusd. "n/a": the CPU lacks AVX-512 (VNNI).
- Derived: threads × GHz × FMA ports × 16 lanes × 2 = ${threads} × ${fmt(ghz, 2)} × 2 × 16 × 2, with
  GHz the \`cpu MHz\` of /proc/cpuinfo (the nominal clock on most VMs; AVX-512 turbo differs) and
  2 FMA ports assumed (server AVX-512 cores; some parts have 1). Counting logical CPUs as cores
  overstates it where two hyperthreads share a core.
- FP32/peak compares the FP32 linear with the measured FP32 peak; W4A16 runs on the FP32 kernels
  too (the weight decoded to FP32 block by block), so the same ceiling applies to it. W8A8, W4A4
  and W4A8 run on vpdpbusd: their ceiling is the INT8 VNNI peak.
`;
  writeAtomically(opts.out, text);
}
