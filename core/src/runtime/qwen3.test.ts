/**
 * Qwen3Model on the committed models/qwen3-mini: load, sessions over the KV cache, greedy and
 * seeded generation, and refusals. The numbers against transformers are checked by
 * adapters/torch/tests/test_qwen3_runtime.py; here greedy generation is checked against this
 * wrapper's own step-by-step argmax, and generation against the tokenizer round trip.
 */
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { SlipstreamError } from '../errors/index.js';
import { BpeTokenizer } from '../tokenizer/index.js';
import { Qwen3Model, Sampler, qwen3ConfigFromJson, sampleToken } from './index.js';

const MODEL_DIR = fileURLToPath(new URL('../../../models/qwen3-mini', import.meta.url));

let model: Qwen3Model;
let tok: BpeTokenizer;

beforeAll(async () => {
  model = await Qwen3Model.load(MODEL_DIR);
  tok = await BpeTokenizer.load(`${MODEL_DIR}/tokenizer.json`);
});

afterAll(() => model.free());

async function collect(it: AsyncIterable<number>): Promise<number[]> {
  const out: number[] = [];
  for await (const t of it) out.push(t);
  return out;
}

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

describe('Qwen3Model', () => {
  it('reads qwen3-mini\'s config', () => {
    expect(model.config).toMatchObject({ vocabSize: 8192, hiddenSize: 256, layers: 8, heads: 4, kvHeads: 2, headDim: 64, intermediateSize: 768, maxContext: 512, ropeTheta: 10000, tieWordEmbeddings: true });
    expect(model.eosTokenIds).toEqual([0]);
    expect(model.layerWidths(3)).toEqual({ heads: 4, kvHeads: 2, intermediate: 768 });
    expect(model.weightBytes()).toBeGreaterThan(4 * 8_000_000);
  });

  it('generates greedily: the argmax of each step, the same every time', async () => {
    const prompt = tok.encode('Harbor \\Har"bor\\, n.');
    const gen = await collect(model.generate(prompt, { maxTokens: 20, temperature: 0, stop: [] }));
    expect(gen).toHaveLength(20);
    const s = model.createSession();
    let logits = await s.forward(prompt);
    const manual: number[] = [];
    for (let i = 0; i < 20; i++) {
      manual.push(argmax(logits));
      logits = s.forwardSync([manual[i]!]);
    }
    expect(s.position).toBe(prompt.length + 20);
    s.free();
    expect(gen).toEqual(manual);
    expect(await collect(model.generate(prompt, { maxTokens: 20, temperature: 0, stop: [] }))).toEqual(gen);
    // A trained model continues a dictionary entry with text, which decodes back to itself.
    const text = tok.decode(gen);
    expect(tok.decode(tok.encode(text))).toBe(text);
  });

  it('samples with top-p reproducibly from a seed, and differently from another seed', async () => {
    const prompt = tok.encode('Quiet \\Qui"et\\, a.');
    const opts = { maxTokens: 24, temperature: 1.0, topP: 0.9, stop: [] };
    const a = await collect(model.generate(prompt, { ...opts, seed: 11 }));
    const b = await collect(model.generate(prompt, { ...opts, seed: 11 }));
    const c = await collect(model.generate(prompt, { ...opts, seed: 12 }));
    expect(a).toHaveLength(24);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
  });

  it('stops at a stop token, at maxTokens, and when aborted', async () => {
    const prompt = tok.encode('Lantern');
    const greedy = await collect(model.generate(prompt, { maxTokens: 8, temperature: 0, stop: [] }));
    const cut = await collect(model.generate(prompt, { maxTokens: 8, temperature: 0, stop: [greedy[3]!] }));
    expect(cut).toEqual(greedy.slice(0, greedy.indexOf(greedy[3]!)));
    const ac = new AbortController();
    const got: number[] = [];
    for await (const t of model.generate(prompt, { maxTokens: 8, temperature: 0, stop: [], signal: ac.signal })) {
      got.push(t);
      if (got.length === 2) ac.abort();
    }
    expect(got).toEqual(greedy.slice(0, 2));
  });

  it('samples one row: greedy, top-k 1, and a seeded Sampler stream', () => {
    const logits = Float32Array.from([0.1, 2.5, 2.5, -1]);
    expect(sampleToken(logits, { temperature: 0 })).toBe(1);
    expect(sampleToken(logits, { topK: 1, seed: 99 })).toBe(1);
    const draw = (seed: number, topK = 0) => {
      const s = new Sampler({ seed, topK });
      return Array.from({ length: 200 }, () => s.next(logits));
    };
    expect(draw(5)).toEqual(draw(5));
    expect(draw(5)).not.toEqual(draw(6));
    // p(1) = p(2) = 0.47: both tie-mates come up; top-k 2 keeps exactly them.
    expect(new Set(draw(5, 2))).toEqual(new Set([1, 2]));
    expect(new Set(draw(5))).toContain(1);
    expect(new Set(draw(5))).toContain(2);
  });

  it('refuses a context past maxContext and bad tokens, leaving the session as it was', async () => {
    const s = model.createSession();
    await s.forward([1, 2, 3]);
    const err = await s.forward(new Array(model.config.maxContext).fill(5)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SlipstreamError);
    expect((err as SlipstreamError).code).toBe('SLIP_E_INVALID_ARGUMENT');
    expect((err as Error).message).toMatch(/at most 512 tokens in the context/);
    await expect(s.forward([8192])).rejects.toThrow(/token ids in \[0, 8192\)/);
    expect(() => s.forwardSync([1.5])).toThrow(/integer token ids/);
    expect(s.position).toBe(3);
    expect(() => model.free()).toThrow(/every session of the model freed/);
    s.free();
    expect(() => sampleToken(Float32Array.from([1, NaN]))).toThrow(/finite values for logits/);
    expect(() => sampleToken(Float32Array.from([1, 2]), { topP: 0 })).toThrow(/top_p/);
  });

  it('refuses one forward while another runs on the same session', async () => {
    const s = model.createSession();
    const first = s.forward([1, 2, 3, 4]);
    expect(() => s.forwardSync([5])).toThrow(/no forward\(\) in flight/);
    await first;
    expect(s.position).toBe(4);
    s.free();
  });

  it('reads per-layer widths and refuses unsupported configs, naming the field', () => {
    const base = { model_type: 'qwen3', vocab_size: 10, hidden_size: 8, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 16, max_position_embeddings: 32 };
    expect(qwen3ConfigFromJson({ ...base, layer_num_key_value_heads: [1, 2], layer_num_attention_heads: [2, 4], layer_intermediate_size: [5, 16] })).toMatchObject({ layerKvHeads: [1, 2], layerHeads: [2, 4], layerIntermediate: [5, 16], headDim: 4 });
    expect(() => qwen3ConfigFromJson({ ...base, layer_intermediate_size: [5] }, 'x/config.json')).toThrow(/x\/config\.json: expected layer_intermediate_size to list 2/);
    expect(() => qwen3ConfigFromJson({ ...base, rope_scaling: { rope_type: 'yarn', factor: 4 } })).toThrow(/"yarn" is not supported/);
    expect(() => qwen3ConfigFromJson({ ...base, hidden_size: 0 })).toThrow(/positive integer hidden_size/);
  });
});
