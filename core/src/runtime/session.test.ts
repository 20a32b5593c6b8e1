import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { SlipstreamError } from '../errors/index.js';
import { hadamard, quantizeSync } from '../quant/index.js';
import { writeSafetensors } from '../safetensors/index.js';
import { Tensor } from '../tensor/index.js';
import { GaussianNoise, WanModel, type WanSession } from './index.js';
import { readCheckpoint } from '../checkpoint/index.js';

const MODEL_DIR = fileURLToPath(new URL('../../../models/wan-mini', import.meta.url));

let model: WanModel;
let session: WanSession;
let x: Tensor<'F32'>, t: Tensor<'F32'>, ctx: Tensor<'F32'>;

beforeAll(async () => {
  model = await WanModel.load(MODEL_DIR);
  session = model.createSession();
  x = new GaussianNoise(3).tensor([2, 16, 2, 8, 8]);
  t = Tensor.fromArray('F32', [2], [700, 700]);
  ctx = new GaussianNoise(4).tensor([2, 8, 4096]);
});

afterAll(() => {
  session.free();
  model.free();
});

function runAll(s: WanSession): Tensor<'F32'> {
  s.begin(x, t, ctx);
  for (let i = 0; i < model.config.layers; i++) s.runBlock(i);
  return s.finish();
}

describe('WanSession', () => {
  it('running every block at full precision is exactly the forward', async () => {
    const ref = await model.forward(x, t, ctx);
    session.reset();
    expect(Array.from(runAll(session).data)).toEqual(Array.from(ref.data));
  });

  it('measures Γ and the delta change from the residual stream it holds', () => {
    session.reset();
    session.begin(x, t, ctx);
    const before = session.readTokens().data;
    const first = session.runBlock(0);
    const after = session.readTokens().data;
    let inL1 = 0, dL1 = 0;
    for (let j = 0; j < before.length; j++) {
      inL1 += Math.abs(before[j]!);
      dL1 += Math.abs(Math.fround(after[j]! - before[j]!)); // the delta is held in float32
    }
    // float64 sums of the same float32 values in another order: relative 1e-12 at most.
    expect(first.inputL1).toBeCloseTo(inL1 / before.length, 9);
    expect(first.gamma).toBeCloseTo(dL1 / inL1, 9);
    expect(first.deltaChange).toBeNull();
    // The same inputs again: the delta does not move.
    session.begin(x, t, ctx);
    expect(session.runBlock(0).deltaChange).toBe(0);
  });

  it('a skipped block re-adds its cached delta', () => {
    session.reset();
    session.begin(x, t, ctx);
    const embedded = session.readTokens().data;
    session.runBlock(0);
    const ran = session.readTokens().data;
    session.begin(x, t, ctx);
    session.skipBlock(0);
    const skipped = session.readTokens().data;
    // embedded + (ran - embedded) in float32: two roundings, each within half an ulp of the
    // larger magnitude involved.
    for (let j = 0; j < ran.length; j++) {
      const mag = Math.max(Math.abs(ran[j]!), Math.abs(embedded[j]!));
      expect(Math.abs(skipped[j]! - ran[j]!)).toBeLessThanOrEqual(mag * 2 ** -23);
    }
  });

  it('runs self-attention block-sparse on request and reports the sparsity', () => {
    // 2×16×16 latents: 128 tokens, one 128-token query block and two 64-token key blocks per
    // head, so Top-k 0.5 keeps one of the two key blocks wherever the similarity guard trusts it.
    const xl = new GaussianNoise(7).tensor([2, 16, 2, 16, 16]);
    session.reset();
    session.begin(xl, t, ctx);
    const dense = session.runBlock(0);
    const denseOut = session.readTokens().data;
    session.begin(xl, t, ctx);
    const sparse = session.runBlock(0, { sparseTopk: 0.5 });
    const sparseOut = session.readTokens().data;
    expect(dense.attentionSparsity).toBe(0);
    expect(sparse.attentionSparsity).toBeGreaterThan(0);
    expect(sparse.attentionSparsity).toBeLessThanOrEqual(0.5);
    expect(Array.from(sparseOut)).not.toEqual(Array.from(denseOut));
    session.reset();
    session.begin(x, t, ctx);
    expect(() => session.runBlock(1, { sparseTopk: 1.5 })).toThrow(/sparse_topk and sparse_topp in \[0, 1\], got 1.5/);
  });

  it('loads NVFP4 linears quantized offline exactly as it quantizes them at load', async () => {
    // The offline file: every block linear's weight rotated by Hadamard 128 and quantized with
    // MSE scales — the runtime's own recipe, so both models must hold the same 4-bit weights.
    const weights = await readCheckpoint(MODEL_DIR);
    const tensors: Record<string, Tensor> = {};
    for (const [name, w] of weights) {
      if (!/^blocks\.\d+\.(self_attn|cross_attn|ffn)\.(q|k|v|o|0|2)\.weight$/.test(name)) continue;
      const rotated = hadamard(Tensor.fromArray('F32', [...w.shape], w.toFloat32()), 128);
      const q = quantizeSync(rotated, 'NVFP4', { mseScales: true });
      const prefix = name.slice(0, -'.weight'.length);
      tensors[`${prefix}.weight_packed`] = q.codes;
      tensors[`${prefix}.weight_scale`] = q.scales;
      tensors[`${prefix}.weight_global_scale`] = q.global!;
    }
    const dir = await mkdtemp(path.join(os.tmpdir(), 'slipstream-nvfp4-'));
    const file = path.join(dir, 'model.safetensors');
    try {
      await writeSafetensors(file, tensors, { hadamard_block: '128' });
      const offline = await WanModel.load(MODEL_DIR, { weights: 'nvfp4', nvfp4Checkpoint: file });
      const atLoad = await WanModel.load(MODEL_DIR, { weights: 'nvfp4', hadamardBlock: 128 });
      try {
        expect(offline.weightBytes()).toBe(atLoad.weightBytes());
        const a = offline.createSession(), b = atLoad.createSession();
        for (const s of [a, b]) {
          s.begin(x, t, ctx);
          for (let i = 0; i < 8; i++) s.runBlock(i, { precision: 'int8' });
        }
        expect(Array.from(a.finish().data)).toEqual(Array.from(b.finish().data));
        a.free();
        b.free();
        await expect(WanModel.load(MODEL_DIR, { weights: 'nvfp4', nvfp4Checkpoint: file, hadamardBlock: 64 })).rejects.toThrow(/hadamard_block 128/);
        await expect(WanModel.load(MODEL_DIR, { nvfp4Checkpoint: file })).rejects.toThrow(/weights 'nvfp4'/);
      } finally {
        offline.free();
        atLoad.free();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("the outlier guard promotes a linear to the guard's precision, and counts it as high precision", async () => {
    const nv = await WanModel.load(MODEL_DIR, { weights: 'nvfp4' });
    const s = nv.createSession();
    try {
      // A guard below every ratio promotes every linear: INT8 guarded to BF16 is BF16, bit for bit.
      const run = (options: Parameters<WanSession['runBlock']>[1]) => {
        s.reset();
        s.begin(x, t, ctx);
        const stats = [];
        for (let i = 0; i < nv.config.layers; i++) stats.push(s.runBlock(i, options));
        return { out: Array.from(s.finish().data), stats };
      };
      const bf16 = run({ precision: 'bf16' });
      const guarded = run({ precision: 'int8', outlierGuard: 1e-6, guardPrecision: 'bf16' });
      expect(guarded.out).toEqual(bf16.out);
      expect(guarded.stats.every((b) => b.fullLinears === 8 && b.lowbitLinears === 0)).toBe(true);
      expect(run({ precision: 'int8', outlierGuard: 1e-6 }).out).toEqual(run({ precision: 'full' }).out);
      // An unreachable guard leaves INT8 alone, and BF16 is not INT8.
      const int8 = run({ precision: 'int8', outlierGuard: 1e9, guardPrecision: 'bf16' });
      expect(int8.stats.every((b) => b.fullLinears === 0 && b.lowbitLinears === 8)).toBe(true);
      expect(int8.out).toEqual(run({ precision: 'int8' }).out);
      expect(int8.out).not.toEqual(bf16.out);
    } finally {
      s.free();
      nv.free();
    }
  });

  it('refuses what it cannot do, naming it', () => {
    session.reset();
    session.begin(x, t, ctx);
    expect(() => session.skipBlock(1)).toThrow(/block 1 to have run before it is skipped/);
    expect(() => session.runBlock(8)).toThrow(/block index in \[0, 8\), got 8/);
    expect(() => session.runBlock(0, { precision: 'int8' })).toThrow(SlipstreamError);
    expect(() => session.runBlock(0, { precision: 'int8' })).toThrow(/other precisions need weights/);
    expect(() => session.runBlock(0, { precision: 'bf16' })).toThrow(/other precisions need weights/);
    expect(() => session.runBlock(0, { precision: 'fp16' as never })).toThrow(/one of full, bf16, int8, nvfp4 for precision/);
    expect(() => session.runBlock(0, { guardPrecision: 'int8' as never })).toThrow(/full or bf16 for guardPrecision/);
    session.runBlock(0);
    const x1 = new GaussianNoise(5).tensor([1, 16, 2, 8, 8]);
    expect(() => session.begin(x1, Tensor.fromArray('F32', [1], [500]), new GaussianNoise(6).tensor([1, 8, 4096]))).toThrow(/reset/);
    expect(() => model.free()).toThrow(/session/);
  });
});
