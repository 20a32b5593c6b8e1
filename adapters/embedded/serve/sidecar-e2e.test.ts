/**
 * Issue 7's end to end: the `openai` client -> `slipstream sidecar` (adapters/vllm/sidecar, in
 * process) -> `slipstream serve` on models/qwen3-mini, all over real HTTP, whole and streamed. The
 * answers through the sidecar must equal those straight from the server, the sidecar's readiness
 * and metrics must see the server, and its quality guard, with the same server as reference, must
 * find full agreement and zero log-prob divergence (the log-probs are real, so they compare).
 */
import { fileURLToPath } from 'node:url';

import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, expect, it } from 'vitest';

import { Sidecar } from '../../vllm/sidecar/sidecar.js';
import { ModelServer } from './server.js';

const MODEL_DIR = fileURLToPath(new URL('../../../models/qwen3-mini', import.meta.url));
const PROMPT = 'Anchor \\An"chor\\, n.';

let server: ModelServer;
let sidecar: Sidecar;
let direct: OpenAI;
let proxied: OpenAI;
let sidecarUrl: string;

beforeAll(async () => {
  server = await ModelServer.load(MODEL_DIR, { servedModelName: 'qwen3-mini', maxConcurrency: 2 });
  const upstream = await server.listen();
  sidecar = new Sidecar({ upstream, reference: upstream, sampleRate: 1, model: 'qwen3-mini' });
  sidecarUrl = await sidecar.listen();
  direct = new OpenAI({ baseURL: `${upstream}/v1`, apiKey: 'unused', maxRetries: 0 });
  proxied = new OpenAI({ baseURL: `${sidecarUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
});

afterAll(async () => {
  // The sidecar first: it waits for its guard's replays, which need the server.
  await sidecar.close();
  await server.close();
});

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${sidecarUrl}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name)).reduce((s, l) => s + Number(l.split(' ').at(-1)), 0);
}

it('the sidecar sees the server as ready', async () => {
  const r = await fetch(`${sidecarUrl}/ready`);
  expect(r.status).toBe(200);
  expect(await r.json()).toEqual({ ready: true, models: ['qwen3-mini'] });
  expect((await proxied.models.list()).data.map((m) => m.id)).toEqual(['qwen3-mini']);
});

it('completions and chat through the sidecar, whole and streamed, equal the server\'s own answers', async () => {
  const params = { model: 'qwen3-mini', prompt: PROMPT, max_tokens: 10, temperature: 0 };
  const want = (await direct.completions.create(params)).choices[0]!.text;
  const whole = await proxied.completions.create(params);
  expect(whole.choices[0]!.text).toBe(want);
  expect(whole.usage!.completion_tokens).toBeGreaterThan(0);
  let streamed = '';
  for await (const c of await proxied.completions.create({ ...params, stream: true })) streamed += c.choices[0]?.text ?? '';
  expect(streamed).toBe(want);

  const chat = { model: 'qwen3-mini', messages: [{ role: 'user' as const, content: 'Anchor' }], max_tokens: 8, temperature: 0 };
  const wantChat = (await direct.chat.completions.create(chat)).choices[0]!.message.content;
  expect((await proxied.chat.completions.create(chat)).choices[0]!.message.content).toBe(wantChat);
  let streamedChat = '';
  let usage: OpenAI.CompletionUsage | undefined;
  for await (const c of await proxied.chat.completions.create({ ...chat, stream: true, stream_options: { include_usage: true } })) {
    streamedChat += c.choices[0]?.delta.content ?? '';
    usage ??= c.usage ?? undefined;
  }
  expect(streamedChat).toBe(wantChat);
  expect(usage?.completion_tokens).toBeGreaterThan(0);

  // Two streamed answers measured at the proxy; two whole ones replayed by the guard to both sides.
  expect(await metric('slipstream_time_to_first_token_seconds_count')).toBe(2);
  await expect.poll(() => metric('slipstream_guard_requests_total{outcome="compared"}')).toBe(2);
  expect(await metric('slipstream_guard_agreements_total')).toBe(2);
  expect(await metric('slipstream_guard_logprob_divergence_count')).toBe(2);
  expect(await metric('slipstream_guard_logprob_divergence_sum')).toBe(0);
});

it('errors from the server reach the client through the sidecar with their status', async () => {
  const err = await proxied.chat.completions.create({ model: 'qwen3-mini', messages: [{ role: 'user', content: 'x' }], n: 2 }).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(OpenAI.BadRequestError);
  expect((err as APIError).param).toBe('n');
});
