/**
 * What each number format costs on one transformer-shaped linear, measured here: weight bytes,
 * weight and output error against FP32, and the median time of the product. The embedded main
 * job until the embedded video runtime lands (issue order 3); every number comes from this run.
 */
import { cosineSimilarity, relativeL1, timeIt } from '../../core/src/metrics/index.js';
import { LinearPlan, type LinearOptions, type QuantizedWeight } from '../../core/src/linear/index.js';
import { dequantizeSync, quantizeSync, type QuantFormat, type QuantOptions } from '../../core/src/quant/index.js';
import { Tensor } from '../../core/src/tensor/index.js';

export interface FormatRow {
  scheme: string;
  weightBytes: number;
  weightRelL1: number;
  outputCosine: number;
  outputRelL1: number;
  medianMs: number;
}

interface Scheme {
  name: string;
  format?: QuantFormat;
  quant?: QuantOptions;
  linear?: LinearOptions;
}

const SCHEMES: Scheme[] = [
  { name: 'FP32 (baseline)' },
  { name: 'W8A8 INT8', format: 'INT8', quant: { granularity: 'row', fullIntRange: true }, linear: { activations: 'dynamic' } },
  { name: 'FP8 E4M3 dynamic', format: 'FP8_E4M3', quant: { granularity: 'row' }, linear: { activations: 'dynamic' } },
  { name: 'W4A16 INT4 g128', format: 'INT4', quant: { groupSize: 128, fullIntRange: true } },
  { name: 'NVFP4A16', format: 'NVFP4' },
  { name: 'NVFP4 W4A4', format: 'NVFP4', linear: { activations: 'dynamic' } },
  { name: 'MXFP4 (weight-only)', format: 'MXFP4' },
];

/** A seeded generator (mulberry32) and Box-Muller: the same report on every machine. */
function gaussian(seed: number): () => number {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}

/** Activations with a few large channels, as transformer hidden states have. */
function activations(m: number, k: number): Tensor<'F32'> {
  const g = gaussian(1);
  const x = new Float32Array(m * k);
  for (let i = 0; i < m; i += 1) for (let j = 0; j < k; j += 1) x[i * k + j] = g() * (j % 97 === 0 ? 20 : 1);
  return new Tensor('F32', [m, k], x);
}

function weight(n: number, k: number): Tensor<'F32'> {
  const g = gaussian(2);
  const std = 1 / Math.sqrt(k);
  return new Tensor('F32', [n, k], Float32Array.from({ length: n * k }, () => g() * std));
}

export async function formatsReport(m = 64, k = 1024, n = 1024): Promise<FormatRow[]> {
  const x = activations(m, k);
  const w = weight(n, k);
  const reference = LinearPlan.create(w).runSync(x);
  const rows: FormatRow[] = [];
  for (const s of SCHEMES) {
    let q: QuantizedWeight = { format: 'F32', codes: w };
    let weightBytes = w.byteLength;
    let weightRelL1 = 0;
    if (s.format) {
      const quantized = quantizeSync(w, s.format, s.quant ?? {});
      q = { format: s.format, codes: quantized.codes, scales: quantized.scales, global: quantized.global, options: s.quant };
      weightBytes = quantized.codes.byteLength + quantized.scales.byteLength + (quantized.global?.byteLength ?? 0);
      weightRelL1 = relativeL1(dequantizeSync(quantized, w.shape).data, w.data);
    }
    const plan = LinearPlan.create(q, s.linear ?? {});
    try {
      const y = plan.runSync(x);
      const timing = await timeIt(() => plan.runSync(x), { warmup: 2, iterations: 15 });
      rows.push({
        scheme: s.name,
        weightBytes,
        weightRelL1,
        outputCosine: cosineSimilarity(y.data, reference.data),
        outputRelL1: relativeL1(y.data, reference.data),
        medianMs: timing.median,
      });
    } finally {
      plan.free();
    }
  }
  return rows;
}

export function formatsTable(rows: FormatRow[]): string {
  const base = rows[0];
  const lines = [
    '| scheme | weight bytes | vs FP32 | weight rel. L1 | output cosine | output rel. L1 | median ms | speed vs FP32 |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows)
    lines.push(
      `| ${r.scheme} | ${r.weightBytes} | ${r === base ? '—' : `${(base.weightBytes / r.weightBytes).toFixed(2)}× smaller`} | ${r.weightRelL1.toExponential(2)} | ${r.outputCosine.toFixed(6)} | ${r.outputRelL1.toExponential(2)} | ${r.medianMs.toFixed(3)} | ${(base.medianMs / r.medianMs).toFixed(2)}× |`,
    );
  return lines.join('\n');
}
