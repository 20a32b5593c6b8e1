/**
 * `slipstream serve` over the committed models/qwen3-mini, in-process on a free port, with the
 * official `openai` client (^6) over real HTTP and SSE. Greedy answers are checked against
 * Qwen3Model.generate on the same prompt, log-probs against a log-softmax computed here from a
 * session's logits. Token budgets stay small: the CI machine has two cores.
 */
import { fileURLToPath } from 'node:url';

import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Qwen3Model } from '../../../core/src/runtime/index.js';
import { BpeTokenizer } from '../../../core/src/tokenizer/index.js';
import { chatPrompt } from './chat-template.js';
import { ModelServer } from './server.js';

const MODEL_DIR = fileURLToPath(new URL('../../../models/qwen3-mini', import.meta.url));
const PROMPT = 'Harbor \\Har"bor\\, n.';

let model: Qwen3Model;
let tok: BpeTokenizer;
let server: ModelServer;
let url: string;
let client: OpenAI;

beforeAll(async () => {
  model = await Qwen3Model.load(MODEL_DIR);
  tok = await BpeTokenizer.load(`${MODEL_DIR}/tokenizer.json`);
  // One slot: the abort test below shows that a hung-up client gives it back.
  server = new ModelServer(model, tok, { servedModelName: 'qwen3-mini', maxConcurrency: 1 });
  url = await server.listen();
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
});

afterAll(async () => {
  await server.close();
  model.free();
});

async function greedy(prompt: string, maxTokens: number): Promise<number[]> {
  const out: number[] = [];
  for await (const t of model.generate(tok.encode(prompt), { maxTokens, temperature: 0 })) out.push(t);
  return out;
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name)).reduce((s, l) => s + Number(l.split(' ').at(-1)), 0);
}

function logSoftmax(logits: Float32Array, i: number): number {
  let max = -Infinity;
  for (const x of logits) max = Math.max(max, x);
  let sum = 0;
  for (const x of logits) sum += Math.exp(x - max);
  return logits[i]! - max - Math.log(sum);
}

describe('slipstream serve: completions', () => {
  it('lists the model, answers /health and /version', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['qwen3-mini']);
    expect((await client.models.retrieve('qwen3-mini')).id).toBe('qwen3-mini');
    expect((await fetch(`${url}/health`)).status).toBe(200);
    expect(((await (await fetch(`${url}/version`)).json()) as { version: string }).version).toMatch(/^\d+\.\d+/);
  });

  it('greedy text equals Qwen3Model.generate, whole and streamed, with usage', async () => {
    const ids = await greedy(PROMPT, 12);
    const want = tok.decode(ids, { skipSpecial: true });
    const whole = await client.completions.create({ model: 'qwen3-mini', prompt: PROMPT, max_tokens: 12, temperature: 0 });
    expect(whole.object).toBe('text_completion');
    expect(whole.choices[0]!.text).toBe(want);
    expect(whole.choices[0]!.finish_reason).toBe(ids.length === 12 ? 'length' : 'stop');
    expect(whole.usage).toEqual({ prompt_tokens: tok.encode(PROMPT).length, completion_tokens: ids.length, total_tokens: tok.encode(PROMPT).length + ids.length });

    const stream = await client.completions.create({ model: 'qwen3-mini', prompt: PROMPT, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage: unknown = null;
    let chunks = 0;
    for await (const c of stream) {
      if (c.usage) usage = c.usage;
      for (const ch of c.choices) {
        text += ch.text;
        finish = ch.finish_reason ?? finish;
        chunks++;
      }
    }
    expect(text).toBe(want);
    expect(finish).toBe(whole.choices[0]!.finish_reason);
    expect(usage).toEqual(whole.usage);
    expect(chunks).toBeGreaterThan(2);
  });

  it('takes a prompt as token ids', async () => {
    const ids = await greedy(PROMPT, 6);
    const r = await client.completions.create({ model: 'qwen3-mini', prompt: tok.encode(PROMPT), max_tokens: 6, temperature: 0 });
    expect(r.choices[0]!.text).toBe(tok.decode(ids, { skipSpecial: true }));
  });

  it('cuts at the first stop string, also one that spans two tokens, streamed or not', async () => {
    const ids = await greedy(PROMPT, 16);
    const full = tok.decode(ids, { skipSpecial: true });
    // A stop string from the last character of token 4 into the first of token 5.
    const cutAt = tok.decode(ids.slice(0, 5), { skipSpecial: true }).length;
    const stop = full.slice(cutAt - 1, cutAt + 1);
    expect(stop).toHaveLength(2);
    const want = full.slice(0, full.indexOf(stop));
    const whole = await client.completions.create({ model: 'qwen3-mini', prompt: PROMPT, max_tokens: 16, temperature: 0, stop: ['never appears here', stop] });
    expect(whole.choices[0]!.text).toBe(want);
    expect(whole.choices[0]!.finish_reason).toBe('stop');
    const stream = await client.completions.create({ model: 'qwen3-mini', prompt: PROMPT, max_tokens: 16, temperature: 0, stop, stream: true });
    let text = '';
    let finish: string | null = null;
    for await (const c of stream) for (const ch of c.choices) (text += ch.text), (finish = ch.finish_reason ?? finish);
    expect(text).toBe(want);
    expect(finish).toBe('stop');
  });

  it('returns the sampled tokens\' log-probs: log-softmax of the logits, <= 0, with top-N alternatives', async () => {
    const r = await client.completions.create({ model: 'qwen3-mini', prompt: PROMPT, max_tokens: 4, temperature: 0, logprobs: 3 });
    const lp = r.choices[0]!.logprobs!;
    expect(lp.tokens).toHaveLength(4);
    expect(lp.tokens!.join('')).toBe(r.choices[0]!.text);
    const ids = await greedy(PROMPT, 4);
    const s = model.createSession();
    let logits = await s.forward(tok.encode(PROMPT));
    for (let i = 0; i < 4; i++) {
      expect(lp.token_logprobs![i]!).toBeLessThanOrEqual(0);
      // Float32 logits, float64 sums here and there: agreement to 1e-4 nats.
      expect(Math.abs(lp.token_logprobs![i]! - logSoftmax(logits, ids[i]!))).toBeLessThan(1e-4);
      const top = lp.top_logprobs![i]!;
      // Greedy: the sampled token is the most likely, so it is among the top 3 (the map holds 3 entries).
      expect(Object.keys(top)).toHaveLength(3);
      expect(Math.max(...Object.values(top))).toBeCloseTo(lp.token_logprobs![i]!, 6);
      logits = await s.forward([ids[i]!]);
    }
    s.free();
  });

  it('samples repeatably with a seed', async () => {
    const ask = () => client.completions.create({ model: 'qwen3-mini', prompt: PROMPT, max_tokens: 8, temperature: 1, top_p: 0.9, seed: 7, top_k: 50 } as OpenAI.CompletionCreateParamsNonStreaming);
    expect((await ask()).choices[0]!.text).toBe((await ask()).choices[0]!.text);
  });
});

describe('slipstream serve: chat', () => {
  const messages = [
    { role: 'system' as const, content: 'You write dictionary entries.' },
    { role: 'user' as const, content: 'Harbor' },
  ];

  it('uses a plain transcript for qwen3-mini (no ChatML tokens), ChatML when the tokens exist', () => {
    expect(tok.tokenToId('<|im_start|>')).toBeUndefined();
    const p = chatPrompt(messages, tok);
    expect(p).toEqual({ text: 'system: You write dictionary entries.\nuser: Harbor\nassistant:', stopTokens: [], stopStrings: ['\nuser:'], format: 'transcript' });
    const chatml = BpeTokenizer.fromJson({
      model: { type: 'BPE', vocab: { a: 0 }, merges: [] },
      added_tokens: [{ id: 1, content: '<|im_start|>', special: true }, { id: 2, content: '<|im_end|>', special: true }],
      pre_tokenizer: { type: 'ByteLevel' },
    });
    expect(chatPrompt(messages, chatml)).toEqual({
      text: '<|im_start|>system\nYou write dictionary entries.<|im_end|>\n<|im_start|>user\nHarbor<|im_end|>\n<|im_start|>assistant\n',
      stopTokens: [2],
      stopStrings: [],
      format: 'chatml',
    });
  });

  it('greedy reply equals Qwen3Model.generate on the template, whole and streamed, with log-probs', async () => {
    const ids = await greedy(chatPrompt(messages, tok).text, 10);
    let want = tok.decode(ids, { skipSpecial: true });
    if (want.includes('\nuser:')) want = want.slice(0, want.indexOf('\nuser:'));
    const whole = await client.chat.completions.create({ model: 'qwen3-mini', messages, max_tokens: 10, temperature: 0, logprobs: true, top_logprobs: 2 });
    expect(whole.object).toBe('chat.completion');
    expect(whole.choices[0]!.message).toMatchObject({ role: 'assistant', content: want });
    const content = whole.choices[0]!.logprobs!.content!;
    expect(content.length).toBeGreaterThan(0);
    for (const c of content) {
      expect(c.logprob).toBeLessThanOrEqual(0);
      expect(c.top_logprobs).toHaveLength(2);
      expect(c.top_logprobs[0]!.logprob).toBeCloseTo(c.logprob, 6);
      expect(c.bytes).toEqual([...new TextEncoder().encode(c.token)]);
    }
    expect(whole.usage!.completion_tokens).toBe(content.length);

    const stream = await client.chat.completions.create({ model: 'qwen3-mini', messages, max_tokens: 10, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let role: string | undefined;
    let finish: string | null = null;
    let usage: unknown = null;
    for await (const c of stream) {
      if (c.usage) usage = c.usage;
      for (const ch of c.choices) {
        role ??= ch.delta.role;
        text += ch.delta.content ?? '';
        finish = ch.finish_reason ?? finish;
      }
    }
    expect(role).toBe('assistant');
    expect(text).toBe(want);
    expect(finish).toBe(whole.choices[0]!.finish_reason);
    expect(usage).toEqual(whole.usage);
  });
});

describe('slipstream serve: tokenizer routes, metrics, errors, concurrency', () => {
  it('/tokenize and /detokenize round-trip in vLLM\'s shapes', async () => {
    const post = async (path: string, body: unknown) => (await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json();
    const t = (await post('/tokenize', { model: 'qwen3-mini', prompt: PROMPT })) as { count: number; max_model_len: number; tokens: number[] };
    expect(t.tokens).toEqual(tok.encode(PROMPT));
    expect(t.count).toBe(t.tokens.length);
    expect(t.max_model_len).toBe(512);
    expect(await post('/detokenize', { tokens: t.tokens })).toEqual({ prompt: PROMPT });
    const m = (await post('/tokenize', { messages: [{ role: 'user', content: 'Hi' }] })) as { tokens: number[] };
    expect(tok.decode(m.tokens)).toBe('user: Hi\nassistant:');
  });

  it('answers errors in OpenAI\'s shape with their status', async () => {
    const bad = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"prompt": ' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: Record<string, unknown> }).error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_json', param: null });
    expect((await fetch(`${url}/v1/nothing`)).status).toBe(404);
    expect((await fetch(`${url}/v1/completions`)).status).toBe(405);

    const fails = async (p: Promise<unknown>) => p.then(() => null, (e: unknown) => e);
    const unknown = await fails(client.completions.create({ model: 'gpt-4', prompt: 'x', max_tokens: 1 }));
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
    expect((unknown as APIError).message).toMatch(/"gpt-4" does not exist/);
    const n2 = await fails(client.chat.completions.create({ model: 'qwen3-mini', messages: [{ role: 'user', content: 'x' }], n: 2 }));
    expect(n2).toBeInstanceOf(OpenAI.BadRequestError);
    expect((n2 as APIError).message).toMatch(/only n = 1/);
    expect((n2 as APIError).param).toBe('n');
    const long = await fails(client.completions.create({ model: 'qwen3-mini', prompt: 'word '.repeat(600), max_tokens: 1 }));
    expect(long).toBeInstanceOf(OpenAI.BadRequestError);
    expect((long as APIError).code).toBe('context_length_exceeded');
    const budget = await fails(client.completions.create({ model: 'qwen3-mini', prompt: PROMPT, max_tokens: 1000 }));
    expect((budget as APIError).code).toBe('context_length_exceeded');
    const temp = await fails(client.completions.create({ model: 'qwen3-mini', prompt: PROMPT, temperature: -1 }));
    expect(temp).toBeInstanceOf(OpenAI.BadRequestError);
    expect((temp as APIError).param).toBe('temperature');
    const pen = await fails(client.completions.create({ model: 'qwen3-mini', prompt: PROMPT, presence_penalty: 1 }));
    expect((pen as APIError).code).toBe('unsupported_parameter');
  });

  it('a client that hangs up frees its slot: the next request (one slot) completes', async () => {
    const before = await metric('vllm:generation_tokens_total');
    const ctl = new AbortController();
    // ignore_eos: without the abort this would run to 400 tokens.
    const stream = await client.completions.create({ model: 'qwen3-mini', prompt: PROMPT, max_tokens: 400, temperature: 0, stream: true, ignore_eos: true } as OpenAI.CompletionCreateParamsStreaming, { signal: ctl.signal });
    let got = 0;
    for await (const c of stream) {
      if (c.choices[0]?.text && ++got === 2) {
        ctl.abort();
        break;
      }
    }
    expect(got).toBe(2);
    const next = await client.completions.create({ model: 'qwen3-mini', prompt: PROMPT, max_tokens: 4, temperature: 0 });
    expect(next.usage!.completion_tokens).toBe(4);
    await expect.poll(() => metric('vllm:num_requests_running')).toBe(0);
    // The aborted generation stopped early: far fewer than its 400 tokens were made.
    expect((await metric('vllm:generation_tokens_total')) - before).toBeLessThan(200);
  });

  it('queues beyond max-concurrency and exposes vLLM-named metrics', async () => {
    const all = await Promise.all([1, 2, 3].map(() => client.completions.create({ model: 'qwen3-mini', prompt: PROMPT, max_tokens: 3, temperature: 0 })));
    expect(new Set(all.map((r) => r.choices[0]!.text)).size).toBe(1);
    const text = await (await fetch(`${url}/metrics`)).text();
    for (const name of ['vllm:time_to_first_token_seconds_bucket', 'vllm:e2e_request_latency_seconds_count', 'vllm:prompt_tokens_total', 'vllm:num_requests_waiting', 'slipstream_serve_requests_total{route="/v1/completions",status="200"}'])
      expect(text).toContain(name);
    expect(await metric('vllm:request_queue_time_seconds_count')).toBeGreaterThanOrEqual(3);
  });
});
