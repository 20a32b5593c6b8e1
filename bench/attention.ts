/**
 * The attention accuracy benchmark (`npm run bench -- attention`): every method and setting of
 * the method table on inputs that mimic DiT and LLM activations (bench/attention-inputs.ts),
 * against exact float64 on sampled query rows, with the achieved sparsity and the effective
 * speed (dense FLOPs / time) next to our dense FP32. Writes bench/attention-accuracy.md
 * atomically. Never asserts.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

import { runAttentionMethod, type AttentionMethod } from '../core/src/attention/methods.js';
import { gatherRows, referenceRows, sampleQueryRows } from '../core/src/attention/reference.js';
import { cosineSimilarity, relativeL1, rmse } from '../core/src/metrics/index.js';
import { capabilities } from '../core/src/native/index.js';
import { Tensor } from '../core/src/tensor/index.js';
import { makeInputs, type AttentionInputs } from './attention-inputs.js';

interface Setting {
  method: AttentionMethod;
  label: string;
  params?: Record<string, unknown>;
  /** Longest sequence this setting runs at (the emulations are slow by design). */
  maxTokens?: number;
}

const SETTINGS: Setting[] = [
  { method: 'dense', label: 'dense FP32' },
  { method: 'sage', label: 'sage2, per-thread', params: { granularity: 'thread' }, maxTokens: 4096 },
  { method: 'sage', label: 'sage2, per-block', params: { granularity: 'block' }, maxTokens: 4096 },
  { method: 'sage', label: 'sage2, per-thread, no smooth-K', params: { granularity: 'thread', smoothK: false }, maxTokens: 4096 },
  { method: 'sage2pp', label: 'sage2++, per-thread', params: { granularity: 'thread' }, maxTokens: 4096 },
  { method: 'sparse', label: 'sparse top-k 0.2', params: { topk: 0.2 } },
  { method: 'sparse', label: 'sparse top-k 0.1', params: { topk: 0.1 } },
  { method: 'sparse', label: 'sparse top-p 0.9', params: { topk: 0, topp: 0.9 } },
  { method: 'sparse', label: 'sparse top-p 0.6', params: { topk: 0, topp: 0.6 } },
  { method: 'sparse', label: 'sparse hybrid top-k 0.05 ∪ top-p 0.9', params: { topk: 0.05, topp: 0.9 } },
  { method: 'sparse', label: 'sparse hybrid top-k 0.1 ∪ top-p 0.6', params: { topk: 0.1, topp: 0.6 } },
  { method: 'sla', label: 'SLA2 training-free, 10% critical', params: { critical: 0.1 }, maxTokens: 8192 },
  { method: 'sla', label: 'SLA2, 10% critical, linear branch on (α 0.9, identity proj.)', params: { critical: 0.1, alpha: 0.9, projection: 'identity' }, maxTokens: 8192 },
];

const INPUTS: { kind: 'dit' | 'llm'; tokens: number; headDim: number }[] = [
  { kind: 'dit', tokens: 4096, headDim: 128 },
  { kind: 'dit', tokens: 16384, headDim: 64 },
  { kind: 'llm', tokens: 8192, headDim: 128 },
  { kind: 'dit', tokens: 32768, headDim: 64 },
];

const REFERENCE_ROWS = 48;

interface Row {
  input: string;
  setting: string;
  cosine: number;
  relL1: number;
  rmse: number;
  sparsity?: number;
  ms: number;
  gflops: number;
}

function tensors(x: AttentionInputs) {
  const shape = [1, x.heads, x.tokens, x.headDim];
  return { q: new Tensor('F32', shape, x.q), k: new Tensor('F32', shape, x.k), v: new Tensor('F32', shape, x.v) };
}

export async function runAttentionBench(opts: { out: string; log?: (line: string) => void }): Promise<void> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`bench attention: ${line}\n`));
  const started = performance.now();
  const rows: Row[] = [];
  for (const spec of INPUTS) {
    const x = makeInputs(spec.kind, spec.tokens, spec.headDim);
    const { q, k, v } = tensors(x);
    const options = { causal: x.causal };
    const sampled = sampleQueryRows({ q, k, v }, REFERENCE_ROWS);
    const ref = referenceRows({ q, k, v, causal: x.causal }, sampled).values;
    // Effective FLOPs: what dense attention does (4·N²·D; half of it when causal).
    const flops = 4 * x.tokens * x.tokens * x.headDim * x.heads * (x.causal ? 0.5 : 1);
    await runAttentionMethod('dense', q, k, v, options); // untimed: thread pool start, page faults
    for (const s of SETTINGS) {
      if (s.maxTokens !== undefined && x.tokens > s.maxTokens) continue;
      if (s.method === 'sla' && x.causal) continue; // SLA2 is refused with causal
      const t0 = performance.now();
      const r = await runAttentionMethod(s.method, q, k, v, options, s.params ?? {});
      const ms = performance.now() - t0;
      const got = gatherRows(r.out, 'HND', sampled);
      const row: Row = {
        input: x.name + (x.causal ? ' causal' : ''),
        setting: s.label,
        cosine: cosineSimilarity(got, ref),
        relL1: relativeL1(got, ref),
        rmse: rmse(got, ref),
        sparsity: r.sparsity,
        ms,
        gflops: flops / ms / 1e6,
      };
      rows.push(row);
      log(`${row.input} · ${row.setting}: cos ${row.cosine.toFixed(6)}, rel L1 ${row.relL1.toExponential(2)}, ${ms.toFixed(0)} ms`);
    }
  }
  const caps = capabilities();
  const cpu = (os.cpus()[0]?.model ?? 'unknown CPU').trim();
  const lines = [
    '# Attention accuracy (CPU)',
    '',
    'Generated by `npm run bench -- attention` (bench/attention.ts); do not edit by hand.',
    '',
    `- Machine: \`${cpu}\`, ${caps.numThreads} pool threads, ISA \`${caps.isaActive}\`; date ${new Date().toISOString().slice(0, 10)}; run took ${((performance.now() - started) / 1000).toFixed(0)} s`,
    '- Inputs (bench/attention-inputs.ts, one head, seed 1): queries and keys are random Fourier features of the token position',
    '  (a 40×24 latent video grid for DiT, a sequence for LLM) so attention is local, with one channel in 16 four times larger',
    '  (channel outliers), a large mean shared by all keys, and values Student-t (3 degrees of freedom) around per-channel means.',
    `- Error: against exact float64 attention on ${REFERENCE_ROWS} query rows spread over the sequence; cosine similarity, relative L1`,
    '  (Σ|o − ref| / Σ|ref|) and RMSE over those rows. Sparsity: the fraction of (query block, key block) pairs skipped.',
    '- Speed: effective GFLOP/s = dense attention FLOPs (4·N²·D, halved when causal) / wall time of the call, on this CPU.',
    '  The Sage rows are bit-level emulations of the GPU numerics (INT8 QK, FP8 PV, FP22/FP16 accumulators), written for',
    '  accuracy, not speed; SLA2 runs its float64 reference kernel. Their times say nothing about a GPU.',
    '',
    '| input | method | cosine | rel. L1 | RMSE | sparsity | ms | eff. GFLOP/s | vs dense |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const dense = rows.find((d) => d.input === r.input && d.setting === 'dense FP32');
    lines.push(
      `| ${r.input} | ${r.setting} | ${r.cosine.toFixed(6)} | ${r.relL1.toExponential(2)} | ${r.rmse.toExponential(2)} | ${r.sparsity === undefined ? '—' : `${(r.sparsity * 100).toFixed(1)}%`} | ${r.ms.toFixed(0)} | ${r.gflops.toFixed(1)} | ${dense ? `${(dense.ms / r.ms).toFixed(2)}×` : ''} |`,
    );
  }
  mkdirSync(path.dirname(opts.out), { recursive: true });
  const tmp = `${opts.out}.tmp-${process.pid}`;
  writeFileSync(tmp, lines.join('\n') + '\n');
  renameSync(tmp, opts.out);
}
