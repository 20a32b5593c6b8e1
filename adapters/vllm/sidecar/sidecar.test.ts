/**
 * The sidecar between a real OpenAI client (`openai` ^6) and an in-process stand-in of a vLLM
 * server (./stand-in-vllm.ts): real HTTP and SSE on both sides.
 */
import { createServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';

import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';

import { Sidecar } from './sidecar.js';
import { StandInVllm } from './stand-in-vllm.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(options: { reference?: boolean; sampleRate?: number; model?: string } = {}) {
  const up = new StandInVllm();
  await up.start();
  cleanups.push(() => up.stop());
  let ref: StandInVllm | undefined;
  if (options.reference) {
    ref = new StandInVllm();
    ref.logprobs = [-0.15, -0.5];
    await ref.start();
    cleanups.push(() => ref!.stop());
  }
  const sidecar = new Sidecar({ upstream: up.url, reference: ref?.url, sampleRate: options.sampleRate, model: options.model });
  const url = await sidecar.listen();
  cleanups.push(() => sidecar.close());
  return { up, ref, sidecar, url, client: new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 }) };
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name)).reduce((s, l) => s + Number(l.split(' ').at(-1)), 0);
}

describe('sidecar', () => {
  it('passes chat completions through for the openai client and tags them with a request id', async () => {
    const { up, client, url } = await setup();
    const r = await client.chat.completions.create({ model: 'qwen3-mini', messages: [{ role: 'user', content: 'hi' }] });
    expect(r.choices[0].message.content).toBe('Hello');
    const seen = up.seen.find((s) => s.path === '/v1/chat/completions')!;
    expect(seen.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const own = await fetch(`${url}/v1/models`, { headers: { 'x-request-id': 'mine-1' } });
    expect(own.headers.get('x-request-id')).toBe('mine-1');
    expect(((await own.json()) as { data: { id: string }[] }).data[0].id).toBe('qwen3-mini');
    expect(up.seen.at(-1)!.headers['x-request-id']).toBe('mine-1');
  });

  it('streams SSE as it arrives (no buffering) and measures TTFT and inter-token latency', async () => {
    const { up, url, client } = await setup();
    up.hold();
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'qwen3-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.getReader();
    let got = '';
    while (!got.includes('Hel')) got += new TextDecoder().decode((await reader.read()).value);
    expect(got).not.toContain('[DONE]'); // the upstream still holds the rest
    up.release();
    for (let r = await reader.read(); !r.done; r = await reader.read()) got += new TextDecoder().decode(r.value);
    expect(got).toContain('"content":"lo"');
    expect(got.trimEnd().endsWith('data: [DONE]')).toBe(true);
    let text = '';
    for await (const chunk of await client.chat.completions.create({ model: 'qwen3-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] }))
      text += chunk.choices[0]?.delta?.content ?? '';
    expect(text).toBe('Hello');
    expect(await metric(url, 'slipstream_time_to_first_token_seconds_count')).toBe(2);
    expect(await metric(url, 'slipstream_inter_token_latency_seconds_count')).toBe(2);
    expect(await metric(url, 'slipstream_time_per_output_token_seconds_count')).toBe(2);
    expect(await metric(url, 'slipstream_e2e_request_latency_seconds_count')).toBe(2);
  });

  it('moves guided_* into structured_outputs for vLLM >= 0.12 and leaves older servers alone', async () => {
    const { up, client, url } = await setup();
    const body = { model: 'qwen3-mini', messages: [{ role: 'user' as const, content: 'hi' }], guided_json: { type: 'object' }, guided_decoding_backend: 'xgrammar' };
    await client.chat.completions.create(body as never);
    expect(up.seen.at(-1)!.body).toMatchObject({ structured_outputs: { json: { type: 'object' } } });
    expect(up.seen.at(-1)!.body).not.toHaveProperty('guided_json');
    expect(up.seen.at(-1)!.body).not.toHaveProperty('guided_decoding_backend');
    expect(await metric(url, 'slipstream_guided_translated_total')).toBe(1);

    const old = await setup();
    old.up.version = '0.10.2';
    await old.client.chat.completions.create(body as never);
    expect(old.up.seen.at(-1)!.body).toMatchObject({ guided_json: { type: 'object' } });
  });

  it('is ready when the upstream is healthy and lists the model', async () => {
    const { up, url } = await setup({ model: 'qwen3-mini' });
    expect(await (await fetch(`${url}/ready`)).json()).toEqual({ ready: true, models: ['qwen3-mini'] });
    up.healthy = false;
    const r = await fetch(`${url}/ready`);
    expect(r.status).toBe(503);
    expect(((await r.json()) as { reason: string }).reason).toBe('upstream /health answered 503');
    const other = await setup({ model: 'qwen3-8b' });
    expect(((await (await fetch(`${other.url}/ready`)).json()) as { reason: string }).reason).toMatch(/does not list qwen3-8b \(it lists qwen3-mini\)/);
  });

  it('answers 502 naming an unreachable upstream, passes 5xx through, and counts both', async () => {
    const { url, up } = await setup();
    const r = await fetch(`${url}/v1/fail`);
    expect(r.status).toBe(500);
    await up.stop();
    const down = await fetch(`${url}/v1/models`);
    expect(down.status).toBe(502);
    expect(((await down.json()) as { error: { message: string } }).error.message).toMatch(/^upstream http:\/\/127\.0\.0\.1:\d+ unreachable/);
    expect(await metric(url, 'slipstream_upstream_errors_total{kind="unreachable"}')).toBe(1);
    expect(await metric(url, 'slipstream_upstream_errors_total{kind="status_500"}')).toBe(1);
    expect((await fetch(`${url}/admin`)).status).toBe(404);
  });

  it('replays sampled requests to the reference and reports agreement and log-prob divergence', async () => {
    const { client, url, sidecar, up, ref } = await setup({ reference: true, sampleRate: 0.5 });
    for (let i = 0; i < 4; i++) await client.chat.completions.create({ model: 'qwen3-mini', messages: [{ role: 'user', content: `q${i}` }], temperature: 0.8 });
    await sidecar.close(); // waits for the replays
    cleanups.pop();
    const replays = ref!.seen.filter((s) => s.path === '/v1/chat/completions');
    expect(replays).toHaveLength(2); // every second request
    expect(replays[0].body).toMatchObject({ temperature: 0, logprobs: true, messages: [{ content: 'q0' }] });
    expect(up.seen.filter((s) => s.path === '/v1/chat/completions')).toHaveLength(6);
    const text = await sidecar.metrics.registry.metrics();
    const value = (name: string) => Number(text.split('\n').find((l) => l.startsWith(name))!.split(' ').at(-1));
    expect(value('slipstream_guard_requests_total{outcome="compared"}')).toBe(2);
    expect(value('slipstream_guard_agreements_total')).toBe(2);
    expect(value('slipstream_guard_logprob_divergence_count')).toBe(2);
    expect(value('slipstream_guard_logprob_divergence_sum')).toBeCloseTo(2 * ((0.05 + 0.3) / 2), 12);
  });

  it('drains on close: the stream in flight finishes, new requests are turned away', async () => {
    const { up, url, sidecar } = await setup();
    up.hold();
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', connection: 'close' },
      body: JSON.stringify({ model: 'qwen3-mini', stream: true, messages: [] }),
    });
    const reader = res.body!.getReader();
    await reader.read();
    let closed = false;
    const closing = sidecar.close().then(() => (closed = true));
    cleanups.pop();
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBe(false);
    await expect(fetch(`${url}/v1/models`)).rejects.toThrow(); // no new connections
    up.release();
    let rest = '';
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += new TextDecoder().decode(r.value);
    expect(rest).toContain('[DONE]');
    await closing;
    expect(closed).toBe(true);
  });

  it('ends a stream the upstream breaks off with an error event, which the openai client raises as an APIError', async () => {
    const { up, client, url } = await setup();
    up.hold();
    const stream = await client.chat.completions.create({ model: 'qwen3-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    const it = stream[Symbol.asyncIterator]();
    while (!((await it.next()).value?.choices[0]?.delta?.content ?? '').includes('Hel'));
    await up.stop(); // killed mid-answer
    const err = await it.next().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as Error).message).toMatch(/^upstream http:\/\/127\.0\.0\.1:\d+ broke off the stream: aborted/);
    expect(await metric(url, 'slipstream_upstream_errors_total{kind="stream"}')).toBe(1);
    expect(await metric(url, 'slipstream_requests_in_flight')).toBe(0);
    expect((await fetch(`${url}/health`)).status).toBe(200);
  });

  it('cuts the connection when the upstream breaks off inside an event, where an error event would not parse', async () => {
    const half = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {"choices":[{"delta":{"content":"Hel"}}]}\n\ndata: {"choi');
      setTimeout(() => res.destroy(), 20);
    });
    await new Promise<void>((r) => half.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => half.close(() => r())));
    const sidecar = new Sidecar({ upstream: `http://127.0.0.1:${(half.address() as AddressInfo).port}` });
    const url = await sidecar.listen();
    cleanups.push(() => sidecar.close());
    const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', body: '{"stream":true}' });
    await expect(res.text()).rejects.toThrow(/terminated/);
  });

  it('stays up when a client hangs up in the middle of sending its request', async () => {
    const { url, up } = await setup();
    const sock = connect(Number(new URL(url).port), '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write('POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"model"');
    await new Promise((r) => setTimeout(r, 20));
    sock.destroy();
    await new Promise((r) => setTimeout(r, 50)); // before the fix, the body read's rejection went unhandled here
    expect((await fetch(`${url}/health`)).status).toBe(200);
    expect(await metric(url, 'slipstream_requests_in_flight')).toBe(0);
    expect(up.seen.some((s) => s.path === '/v1/chat/completions')).toBe(false);
  });
});
