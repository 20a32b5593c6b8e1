/** The serve load generator against the stand-in vLLM: vllm bench serve's definitions, its result block, failures counted. */
import { afterEach, expect, it } from 'vitest';

import { formatServeResult, percentile, runServeBench, sendRequest, requestBody } from './bench-serve.js';
import { StandInVllm } from './sidecar/stand-in-vllm.js';

const ups: StandInVllm[] = [];
afterEach(async () => {
  for (const u of ups.splice(0)) await u.stop();
});

async function standIn(tokenDelayMs = 0) {
  const up = new StandInVllm({ tokenDelayMs, delayMs: 5 });
  ups.push(up);
  await up.start();
  return up;
}

it('interpolates percentiles as numpy does', () => {
  expect(percentile([1, 2, 3, 4], 50)).toBe(2.5);
  expect(percentile([0, 10], 99)).toBeCloseTo(9.9, 12);
  expect(percentile([], 99)).toBe(0);
});

it('measures TTFT, ITL, TPOT and counts tokens from usage, else by events', async () => {
  const up = await standIn(10);
  const body = requestBody('/v1/chat/completions', 'qwen3-mini', 'a b c', 4, true);
  const r = await sendRequest(up.url, '/v1/chat/completions', body);
  expect(r.outcome).toBe('ok');
  expect(r.outputTokens).toBe(4);
  expect(r.promptTokens).toBe(3);
  expect(r.ttftMs).toBeGreaterThanOrEqual(4);
  expect(r.itlMs).toHaveLength(3);
  // The gaps between events add up to the time from the first event to the last, which is within
  // the latency; timing bounds only where they cannot fail: the server sleeps 5 + 3 x 10 ms before
  // the last token, and a timer never fires early (the first event may arrive late, so the gaps
  // alone have no lower bound).
  const gaps = r.itlMs.reduce((a, b) => a + b, 0);
  expect(r.ttftMs + gaps).toBeLessThanOrEqual(r.latencyMs + 1e-6);
  expect(r.latencyMs).toBeGreaterThanOrEqual(34);
  const noUsage = await sendRequest(up.url, '/v1/completions', { ...requestBody('/v1/completions', 'qwen3-mini', 'a', 3, true), stream_options: undefined });
  expect(noUsage.outputTokens).toBe(3);
  expect(up.seen.at(-2)!.body).toMatchObject({ max_completion_tokens: 4, stream_options: { include_usage: true }, ignore_eos: true });
});

it('prints the result block of vllm bench serve and counts failures apart', async () => {
  const up = await standIn();
  const r = await runServeBench({ url: up.url, numPrompts: 12, concurrency: 4, requestRate: 200, inputLen: 8, outputLen: 5, endpoint: '/v1/completions', seed: 1 });
  expect(r.model).toBe('qwen3-mini');
  expect([r.completed, r.failed, r.total_input, r.total_output]).toEqual([12, 0, 96, 60]);
  expect(r.tpot_ms.median).toBeGreaterThanOrEqual(0);
  const text = formatServeResult(r);
  expect(text.split('\n')[0]).toBe('============ Serving Benchmark Result ============');
  for (const line of ['Successful requests:                     12', 'Maximum request concurrency:             4', 'Request rate configured (RPS):           200.00', '---------------Time to First Token----------------', '-----Time per Output Token (excl. 1st token)------', 'P99 ITL (ms):', 'Median E2EL (ms):'])
    expect(text).toContain(line);
  await up.stop();
  const down = await runServeBench({ url: up.url, model: 'm', numPrompts: 3, inputLen: 1, outputLen: 1, endpoint: '/v1/completions', timeoutMs: 2000 });
  expect([down.completed, down.failed]).toEqual([0, 3]);
  expect(down.requests.every((q) => q.outcome === 'connection_error')).toBe(true);
});
