import { fileURLToPath } from 'node:url';

import { beforeAll, describe, expect, it } from 'vitest';

import { SlipstreamError } from '../errors/index.js';
import { readSafetensors } from '../safetensors/index.js';
import { Tensor } from '../tensor/index.js';
import { GaussianNoise, WanModel, flowSigmas, modelDenoiser, sample } from './index.js';
import { readCheckpoint } from '../checkpoint/index.js';

const MODEL_DIR = fileURLToPath(new URL('../../../models/wan-mini', import.meta.url));

/**
 * Tolerance against PyTorch's FP32 forward of the same (fp16-stored, FP32-widened) weights:
 * max |ours - torch| / max |torch| per stage. Both sides are FP32 with different summation
 * orders (blocked GEMM, online softmax), so each op contributes ~sqrt(K) * 2^-24 relative error
 * (K <= 4096: ~4e-6), and the 8 residual blocks pass it on through LayerNorm/RMSNorm, which
 * rescale small-variance rows. Measured on this CPU (AVX-512): 2.4e-7 after the patch
 * embedding, 3e-7 to 1.7e-6 after the blocks, 3.2e-6 at the output (the head's LayerNorm and
 * modulation amplify). The bounds leave about a 10x margin for other ISAs and thread counts and
 * are far below what a real mistake (a wrong modulation chunk, RoPE axis or norm) gives (> 1e-2).
 */
const BOUND_EMBED = 3e-6;
const BOUND_BLOCKS = 3e-5;

function relMaxError(a: Float32Array, b: Float32Array): number {
  let err = 0, scale = 0;
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return err / scale;
}

let weights: Map<string, Tensor>;
let model: WanModel;
let fixture: Record<string, Tensor>;

beforeAll(async () => {
  weights = await readCheckpoint(MODEL_DIR);
  model = await WanModel.load(MODEL_DIR);
  fixture = (await readSafetensors(`${MODEL_DIR}/fixture.safetensors`)).tensors;
});

describe('WanModel', () => {
  it('infers wan-mini\'s config from the weights', () => {
    expect(model.config).toEqual({ dim: 256, ffnDim: 1024, heads: 2, layers: 8, inChannels: 16, outChannels: 16, textDim: 4096, freqDim: 256, patch: [1, 2, 2], eps: 1e-6 });
  });

  it('matches PyTorch\'s FP32 forward on the fixture, stage by stage', async () => {
    const { x, t, context } = fixture as Record<string, Tensor<'F32'>>;
    const { out, hidden } = await model.forwardTrace(x!, t!, context!);
    const stage = hidden.numel / (model.config.layers + 1);
    const errors: number[] = [];
    for (let i = 0; i <= model.config.layers; i++) {
      const ours = hidden.data.subarray(i * stage, (i + 1) * stage);
      errors.push(relMaxError(ours, fixture[`hidden.${i}`]!.data as Float32Array));
    }
    const outErr = relMaxError(out.data, fixture.out!.data as Float32Array);
    console.log(`wan-mini vs PyTorch, relative max error: hidden ${errors.map((e) => e.toExponential(1)).join(' ')}; out ${outErr.toExponential(1)}`);
    expect(errors[0]).toBeLessThan(BOUND_EMBED);
    for (const e of errors.slice(1)) expect(e).toBeLessThan(BOUND_BLOCKS);
    expect(outErr).toBeLessThan(BOUND_BLOCKS);
    // forward() and forwardSync() give the traced forward's output exactly.
    expect((await model.forward(x!, t!, context!)).data).toEqual(out.data);
    expect(model.forwardSync(x!, t!, context!).data).toEqual(out.data);
  });

  it('names a missing weight', async () => {
    const w = new Map(weights);
    w.delete('blocks.3.self_attn.k.weight');
    await expect(WanModel.fromTensors(w)).rejects.toThrow(/"blocks\.3\.self_attn\.k\.weight"/);
  });

  it('names a weight of the wrong shape', async () => {
    const w = new Map(weights);
    w.set('blocks.5.ffn.2.weight', Tensor.zeros('F16', [256, 512]));
    const err = await WanModel.fromTensors(w).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SlipstreamError);
    expect((err as SlipstreamError).code).toBe('SLIP_E_SHAPE_MISMATCH');
    expect((err as Error).message).toMatch(/"blocks\.5\.ffn\.2\.weight"/);
    expect((err as Error).message).toContain('[256, 1024]');
  });

  it('names an unexpected weight', async () => {
    const w = new Map(weights);
    w.set('blocks.0.extra.weight', Tensor.zeros('F32', [4]));
    await expect(WanModel.fromTensors(w)).rejects.toThrow(/unexpected "blocks\.0\.extra\.weight"/);
  });

  it('refuses inputs of the wrong shape, naming them', async () => {
    const { x, t } = fixture as Record<string, Tensor<'F32'>>;
    await expect(model.forward(x!, t!, Tensor.zeros('F32', [2, 8, 100]))).rejects.toThrow(/context/);
    await expect(model.forward(Tensor.zeros('F32', [2, 16, 2, 7, 8]), t!, fixture.context!)).rejects.toThrow(/for x/);
  });
});

describe('sampler', () => {
  it('has sample.py\'s sigmas', () => {
    expect(flowSigmas(4, 1)).toEqual([1, 0.75, 0.5, 0.25, 0]);
    const s = flowSigmas(2, 3);
    expect(s[1]).toBeCloseTo((3 * 0.5) / (1 + 2 * 0.5), 12);
  });

  it('draws the same standard normals for a seed', () => {
    const a = new GaussianNoise(7).tensor([4096]), b = new GaussianNoise(7).tensor([4096]);
    expect(a.data).toEqual(b.data);
    expect(new GaussianNoise(8).tensor([4]).data).not.toEqual(a.data.subarray(0, 4));
    const mean = a.data.reduce((s, v) => s + v, 0) / a.numel;
    const variance = a.data.reduce((s, v) => s + (v - mean) ** 2, 0) / a.numel;
    expect(Math.abs(mean)).toBeLessThan(0.06); // 4 sigma of the mean of 4096 normals: 4/64
    expect(Math.abs(variance - 1)).toBeLessThan(0.09); // 4 sigma: 4 sqrt(2/4096)
  });

  it('is deterministic for a seed and gives finite latents (Euler + CFG)', async () => {
    const context = fixture.context!.reshape([2, 8, 4096]);
    const ctx1 = new Tensor('F32', [1, 8, 4096], (context.data as Float32Array).slice(0, 8 * 4096));
    const run = () => sample(modelDenoiser(model), 16, { context: ctx1, seed: 3, steps: 3, cfg: 5, shift: 1, latent: [2, 8, 8] });
    const a = await run(), b = await run();
    expect(a.shape).toEqual([1, 16, 2, 8, 8]);
    expect(a.data).toEqual(b.data);
    expect(a.data.every(Number.isFinite)).toBe(true);
  });
});
