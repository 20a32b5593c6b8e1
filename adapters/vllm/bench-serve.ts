/**
 * `slipstream bench serve`: a load generator for any OpenAI-compatible server (vLLM, the sidecar,
 * `slipstream serve`) that measures what `vllm bench serve` measures, under the same names and
 * units (../../../shared/research/vllm.md §2.6), so the two compare one to one:
 * - TTFT: request sent -> first streamed event carrying text;
 * - TPOT: per request, (latency - TTFT) / (output tokens - 1);
 * - ITL: every gap between text-carrying events;
 * - E2EL: request sent -> end of the answer.
 * Output tokens come from the stream's usage chunk when the server sends one (we ask for it with
 * stream_options.include_usage), else one per text-carrying event. Arrivals are Poisson (seeded)
 * when a request rate is given, otherwise all at once; a concurrency limit bounds requests in flight.
 * Every request has a deadline, so a server that stops answering shows up as failures, not a hang.
 */
import os from 'node:os';

import { cpuModel } from '../../core/src/metrics/index.js';
import { GaussianNoise } from '../../core/src/runtime/noise.js';

export type Endpoint = '/v1/completions' | '/v1/chat/completions';

export interface ServeBenchOptions {
  /** Base URL of the server, without /v1. */
  url: string;
  /** Default: the first model the server's /v1/models lists. */
  model?: string;
  numPrompts: number;
  /** Requests in flight at most (default: no limit). */
  concurrency?: number;
  /** Requests per second, Poisson arrivals (default: all at once). */
  requestRate?: number;
  /** Prompt length in words: we have no tokenizer for an arbitrary server, usage says the tokens. */
  inputLen: number;
  outputLen: number;
  endpoint: Endpoint;
  /** false: plain JSON answers, where TTFT is the whole latency. */
  stream?: boolean;
  seed?: number;
  /** Per request (default 10 min). */
  timeoutMs?: number;
}

/**
 * ok: a whole answer (status 200, and for a stream `data: [DONE]` with no error event);
 * http_error: an error status; error_event: an error sent as an SSE event;
 * stream_error: the answer broke off; connection_error: no answer at all; timeout: the deadline passed.
 */
export type Outcome = 'ok' | 'http_error' | 'error_event' | 'stream_error' | 'connection_error' | 'timeout';

export interface RequestRecord {
  outcome: Outcome;
  error?: string;
  status?: number;
  /** ms since the request was sent. */
  ttftMs: number;
  latencyMs: number;
  itlMs: number[];
  promptTokens: number;
  outputTokens: number;
  /** ms since the benchmark (or whoever passed `origin`) started. */
  startMs: number;
}

export interface LatencyStats {
  mean: number;
  median: number;
  std: number;
  p99: number;
}

/** `vllm bench serve`'s BenchmarkMetrics field names, with percentiles fixed at 99. */
export interface ServeBenchResult {
  model: string;
  options: ServeBenchOptions;
  completed: number;
  failed: number;
  total_input: number;
  total_output: number;
  duration_s: number;
  request_throughput: number;
  output_throughput: number;
  total_token_throughput: number;
  ttft_ms: LatencyStats;
  tpot_ms: LatencyStats;
  itl_ms: LatencyStats;
  e2el_ms: LatencyStats;
  /** Failures by message, most frequent first. */
  errors: { message: string; count: number }[];
  requests: RequestRecord[];
}

/** Linear interpolation between closest ranks, as numpy.percentile (which vLLM uses). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

export function latencyStats(values: readonly number[]): LatencyStats {
  if (values.length === 0) return { mean: 0, median: 0, std: 0, p99: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const mean = sorted.reduce((s, v) => s + v, 0) / sorted.length;
  const std = Math.sqrt(sorted.reduce((s, v) => s + (v - mean) ** 2, 0) / sorted.length);
  return { mean, median: percentile(sorted, 50), std, p99: percentile(sorted, 99) };
}

const WORDS = 'the of and to in is was for on that with as by at from his her an which or be are this had not but were have they one all been their there more when who will would time so into some no other than its only could two any new may these first after over about'.split(' ');

function prompt(random: () => number, words: number): string {
  return Array.from({ length: words }, () => WORDS[Math.floor(random() * WORDS.length)]).join(' ');
}

/** The body `vllm bench serve` sends for its openai / openai-chat backends. */
export function requestBody(endpoint: Endpoint, model: string, text: string, outputLen: number, stream: boolean): Record<string, unknown> {
  const common = { model, temperature: 0, ignore_eos: true, stream, ...(stream ? { stream_options: { include_usage: true } } : {}) };
  return endpoint === '/v1/chat/completions'
    ? { ...common, messages: [{ role: 'user', content: text }], max_completion_tokens: outputLen }
    : { ...common, prompt: text, max_tokens: outputLen };
}

function describeError(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return e.cause ? `${e.message}: ${e.cause.code ?? e.cause.message}` : e.message;
}

/**
 * Sends one request and reads its answer to the end, the deadline, or the first sign of failure;
 * never throws. `origin` is the performance.now() that startMs counts from.
 */
export async function sendRequest(url: string, endpoint: Endpoint, body: Record<string, unknown>, opts: { timeoutMs?: number; origin?: number } = {}): Promise<RequestRecord> {
  const deadline = AbortSignal.timeout(opts.timeoutMs ?? 600_000);
  const t0 = performance.now();
  const rec: RequestRecord = { outcome: 'ok', ttftMs: 0, latencyMs: 0, itlMs: [], promptTokens: 0, outputTokens: 0, startMs: t0 - (opts.origin ?? t0) };
  const fail = (outcome: Outcome, error: string) => {
    rec.outcome = outcome;
    rec.error = error;
    rec.latencyMs = performance.now() - t0;
    return rec;
  };
  let res: Response;
  try {
    res = await fetch(url.replace(/\/+$/, '') + endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: deadline });
  } catch (err) {
    return deadline.aborted ? fail('timeout', 'deadline passed before an answer') : fail('connection_error', describeError(err));
  }
  rec.status = res.status;
  try {
    if (!res.ok) {
      const text = await res.text();
      let message = text.slice(0, 200);
      try {
        message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? message;
      } catch {
        // not JSON: keep the text
      }
      return fail('http_error', `HTTP ${res.status}: ${message}`);
    }
    if (!(res.headers.get('content-type') ?? '').includes('text/event-stream')) {
      const json = (await res.json()) as { choices?: unknown[]; usage?: { prompt_tokens?: number; completion_tokens?: number } };
      rec.latencyMs = rec.ttftMs = performance.now() - t0;
      if (!Array.isArray(json.choices)) return fail('http_error', 'answer without choices');
      rec.outputTokens = json.usage?.completion_tokens ?? 1;
      rec.promptTokens = json.usage?.prompt_tokens ?? 0;
      return rec;
    }
    const decoder = new TextDecoder();
    let rest = '';
    let last = 0;
    let events = 0;
    let usage: number | null = null;
    let done = false;
    let serverError: string | null = null;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      const lines = (rest + decoder.decode(chunk, { stream: true })).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') {
          done = true;
          continue;
        }
        let ev: { error?: { message?: string }; choices?: { delta?: { content?: string; reasoning_content?: string }; text?: string }[]; usage?: { prompt_tokens?: number; completion_tokens?: number } | null };
        try {
          ev = JSON.parse(data);
        } catch {
          return fail('stream_error', `an event that is not JSON: ${data.slice(0, 80)}`);
        }
        if (ev.error) serverError = ev.error.message ?? JSON.stringify(ev.error);
        if (ev.usage?.completion_tokens !== undefined) {
          usage = ev.usage.completion_tokens;
          rec.promptTokens = ev.usage.prompt_tokens ?? 0;
        }
        if ((ev.choices ?? []).some((c) => (c.delta?.content || c.delta?.reasoning_content || c.text || '') !== '')) {
          const now = performance.now();
          if (events === 0) rec.ttftMs = now - t0;
          else rec.itlMs.push(now - last);
          last = now;
          events++;
        }
      }
    }
    rec.latencyMs = performance.now() - t0;
    rec.outputTokens = usage ?? events;
    if (serverError !== null) return fail('error_event', serverError);
    if (!done) return fail('stream_error', 'the stream ended before data: [DONE]');
    return rec;
  } catch (err) {
    return deadline.aborted ? fail('timeout', 'deadline passed mid-answer') : fail('stream_error', describeError(err));
  }
}

async function firstModel(url: string): Promise<string> {
  const r = await fetch(url.replace(/\/+$/, '') + '/v1/models', { signal: AbortSignal.timeout(30_000) });
  const ids = (((await r.json()) as { data?: { id: string }[] }).data ?? []).map((m) => m.id);
  if (!r.ok || ids.length === 0) throw new Error(`${url}/v1/models lists no model (HTTP ${r.status}); pass --model`);
  return ids[0];
}

export async function runServeBench(options: ServeBenchOptions): Promise<ServeBenchResult> {
  const model = options.model ?? (await firstModel(options.url));
  const noise = new GaussianNoise(options.seed ?? 0); // seeded: the same prompts and arrivals every run
  const random = () => noise.uniform();
  const stream = options.stream ?? true;
  const bodies = Array.from({ length: options.numPrompts }, () => requestBody(options.endpoint, model, prompt(random, options.inputLen), options.outputLen, stream));
  // One draw per gap from Exp(rate), as vLLM's burstiness 1; fixed before the run so timing does not shift it.
  const rate = options.requestRate ?? Infinity;
  const gaps = bodies.map(() => (Number.isFinite(rate) ? -Math.log(1 - random()) / rate : 0) * 1000);

  let free = options.concurrency ?? Infinity;
  const waiting: (() => void)[] = [];
  const acquire = () => (free > 0 ? (free--, Promise.resolve()) : new Promise<void>((r) => waiting.push(r)));
  const release = () => (waiting.length ? waiting.shift()!() : free++);

  const t0 = performance.now();
  const pending: Promise<RequestRecord>[] = [];
  let at = 0;
  for (const [i, body] of bodies.entries()) {
    at += gaps[i];
    const wait = t0 + at - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    pending.push(
      acquire().then(async () => {
        try {
          return await sendRequest(options.url, options.endpoint, body, { timeoutMs: options.timeoutMs, origin: t0 });
        } finally {
          release();
        }
      }),
    );
  }
  const requests = await Promise.all(pending);
  return summarize(model, options, requests, (performance.now() - t0) / 1000);
}

export function summarize(model: string, options: ServeBenchOptions, requests: RequestRecord[], durationS: number): ServeBenchResult {
  const ok = requests.filter((r) => r.outcome === 'ok');
  const totalInput = ok.reduce((s, r) => s + r.promptTokens, 0);
  const totalOutput = ok.reduce((s, r) => s + r.outputTokens, 0);
  const counts = new Map<string, number>();
  for (const r of requests) if (r.outcome !== 'ok') counts.set(r.error ?? r.outcome, (counts.get(r.error ?? r.outcome) ?? 0) + 1);
  return {
    model,
    options,
    completed: ok.length,
    failed: requests.length - ok.length,
    total_input: totalInput,
    total_output: totalOutput,
    duration_s: durationS,
    request_throughput: ok.length / durationS,
    output_throughput: totalOutput / durationS,
    total_token_throughput: (totalInput + totalOutput) / durationS,
    ttft_ms: latencyStats(ok.map((r) => r.ttftMs)),
    tpot_ms: latencyStats(ok.filter((r) => r.outputTokens > 1).map((r) => (r.latencyMs - r.ttftMs) / (r.outputTokens - 1))),
    itl_ms: latencyStats(ok.flatMap((r) => r.itlMs)),
    e2el_ms: latencyStats(ok.map((r) => r.latencyMs)),
    errors: [...counts].map(([message, count]) => ({ message, count })).sort((a, b) => b.count - a.count),
    requests,
  };
}

/** Python's '{s:{c}^{n}}': the odd pad goes right. */
function center(s: string, fill: string, width = 50): string {
  const pad = Math.max(0, width - s.length);
  return fill.repeat(Math.floor(pad / 2)) + s + fill.repeat(pad - Math.floor(pad / 2));
}

const METRICS = [
  ['ttft_ms', 'TTFT', 'Time to First Token'],
  ['tpot_ms', 'TPOT', 'Time per Output Token (excl. 1st token)'],
  ['itl_ms', 'ITL', 'Inter-token Latency'],
  ['e2el_ms', 'E2EL', 'End-to-end Latency'],
] as const;

/** The result block as `vllm bench serve` prints it ('{:<40} {:<10}' rows, 2 decimals). */
export function formatServeResult(r: ServeBenchResult): string {
  const row = (label: string, value: number, digits = 2) => `${label.padEnd(40)} ${(Number.isInteger(value) && digits === 0 ? String(value) : value.toFixed(digits)).padEnd(10)}`;
  const lines = [center(' Serving Benchmark Result ', '='), row('Successful requests:', r.completed, 0), row('Failed requests:', r.failed, 0)];
  if (r.options.concurrency !== undefined) lines.push(row('Maximum request concurrency:', r.options.concurrency, 0));
  if (r.options.requestRate !== undefined) lines.push(row('Request rate configured (RPS):', r.options.requestRate));
  lines.push(
    row('Benchmark duration (s):', r.duration_s),
    row('Total input tokens:', r.total_input, 0),
    row('Total generated tokens:', r.total_output, 0),
    row('Request throughput (req/s):', r.request_throughput),
    row('Output token throughput (tok/s):', r.output_throughput),
    row('Total Token throughput (tok/s):', r.total_token_throughput),
  );
  for (const [key, short, header] of METRICS) {
    const s = r[key];
    lines.push(center(header, '-'), row(`Mean ${short} (ms):`, s.mean), row(`Median ${short} (ms):`, s.median), row(`P99 ${short} (ms):`, s.p99));
  }
  lines.push('='.repeat(50));
  return lines.map((l) => l.trimEnd()).join('\n') + '\n';
}

/** The machine a client-side number was measured on, for the tables. */
export function machineLine(): string {
  return `\`${cpuModel()}\`, ${os.cpus().length} logical CPUs, ${os.platform()} ${os.release()}, Node ${process.version}`;
}

const ms = (v: number) => v.toFixed(2);

/** `--out`: the same numbers as a Markdown table. */
export function serveResultMarkdown(r: ServeBenchResult, command: string): string {
  const o = r.options;
  const lines = [
    '# Serving benchmark',
    '',
    `Generated by \`${command}\` (adapters/vllm/bench-serve.ts); do not edit by hand.`,
    '',
    `- Server: ${o.url}, model \`${r.model}\`, ${o.endpoint}, ${o.stream === false ? 'not streamed' : 'streamed (SSE)'}`,
    `- Load: ${o.numPrompts} prompts of ${o.inputLen} words, ${o.outputLen} output tokens each (ignore_eos), ` +
      `${o.requestRate === undefined ? 'all at once' : `Poisson arrivals at ${o.requestRate} req/s (seed ${o.seed ?? 0})`}, ` +
      `${o.concurrency === undefined ? 'no concurrency limit' : `at most ${o.concurrency} in flight`}`,
    `- Client machine: ${machineLine()}`,
    `- Date: ${new Date().toISOString().slice(0, 10)}`,
    '',
    '| metric | value |',
    '|---|---|',
    `| Successful requests | ${r.completed} |`,
    `| Failed requests | ${r.failed} |`,
    `| Benchmark duration (s) | ${r.duration_s.toFixed(2)} |`,
    `| Total input tokens | ${r.total_input} |`,
    `| Total generated tokens | ${r.total_output} |`,
    `| Request throughput (req/s) | ${r.request_throughput.toFixed(2)} |`,
    `| Output token throughput (tok/s) | ${r.output_throughput.toFixed(2)} |`,
    `| Total Token throughput (tok/s) | ${r.total_token_throughput.toFixed(2)} |`,
    '',
    '| latency (ms) | mean | median | P99 |',
    '|---|---|---|---|',
    ...METRICS.map(([key, short]) => `| ${short} | ${ms(r[key].mean)} | ${ms(r[key].median)} | ${ms(r[key].p99)} |`),
  ];
  if (r.errors.length) lines.push('', 'Failures:', '', ...r.errors.slice(0, 10).map((e) => `- ${e.count} × ${e.message}`));
  return lines.join('\n') + '\n';
}
