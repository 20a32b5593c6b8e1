/**
 * `slipstream sidecar`: an OpenAI-API proxy in front of a vLLM server. It passes /v1/* (and vLLM's
 * /tokenize, /detokenize, /version) through byte for byte, streaming SSE as it arrives; gives every
 * request an id; answers readiness from the upstream's /health and model list; exposes Prometheus
 * metrics measured at the proxy; moves the guided_* parameters vLLM 0.12 removed into
 * structured_outputs when the upstream's /version says so; optionally replays a sample of requests
 * to a reference deployment (greedy, with log-probs) and reports agreement and log-prob divergence;
 * and on close() stops taking requests and waits for those in flight.
 */
import { randomUUID } from 'node:crypto';
import { Agent as HttpAgent, createServer, request as httpRequest, type ClientRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';

import { SidecarMetrics } from './metrics.js';
import { atLeast, SseTokenCounter, translateGuided } from './openai-events.js';

export interface SidecarOptions {
  upstream: string;
  reference?: string;
  /** Share of eligible requests the quality guard replays (0 = off). */
  sampleRate?: number;
  /** The model readiness waits for; default: any model the upstream lists. */
  model?: string;
  host?: string;
  port?: number;
}

const PASSTHROUGH = /^\/(v1\/.*|tokenize|detokenize|version)$/;
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'host', 'content-length']);

/** undici's "fetch failed" alone does not say why; its cause does (ECONNREFUSED, UND_ERR_SOCKET, ...). */
function reason(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return e.cause ? `${e.message} (${e.cause.code ?? e.cause.message})` : e.message;
}

function openaiError(res: ServerResponse, status: number, message: string, type: string, id?: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json', ...(id ? { 'x-request-id': id } : {}) });
  res.end(JSON.stringify({ error: { message, type, code: status } }));
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of req) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

interface Logprobs {
  text: string;
  tokens: { token: string; logprob: number }[];
}

function logprobsOf(body: unknown): Logprobs | null {
  const c = (body as { choices?: Record<string, unknown>[] })?.choices?.[0];
  if (!c) return null;
  const msg = c.message as { content?: string } | undefined;
  const text = msg?.content ?? (c.text as string | undefined) ?? '';
  const lp = c.logprobs as { content?: { token: string; logprob: number }[]; tokens?: string[]; token_logprobs?: number[] } | null;
  const tokens = lp?.content ?? (lp?.tokens ?? []).map((t, i) => ({ token: t, logprob: lp?.token_logprobs?.[i] ?? NaN }));
  return { text, tokens };
}

export class Sidecar {
  readonly metrics = new SidecarMetrics();
  readonly server: Server;
  #inFlight = 0;
  #draining = false;
  #idle: (() => void)[] = [];
  #version: Promise<string | null> | null = null;
  #guardCount = 0;
  #guards = new Set<Promise<void>>();
  #httpAgent = new HttpAgent({ keepAlive: true });
  #httpsAgent = new HttpsAgent({ keepAlive: true });

  constructor(readonly options: SidecarOptions) {
    this.server = createServer((req, res) => void this.#handle(req, res));
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port ?? 0, this.options.host ?? '127.0.0.1', () => resolve());
    });
    const a = this.server.address() as AddressInfo;
    return `http://${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`;
  }

  /** Stops taking requests, waits for those in flight (and the guard's replays), then closes. */
  async close(): Promise<void> {
    this.#draining = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    if (this.#inFlight > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
    await Promise.all(this.#guards);
    this.server.closeAllConnections();
    this.#httpAgent.destroy();
    this.#httpsAgent.destroy();
    await closed;
  }

  #url(base: string, path: string): string {
    return base.replace(/\/+$/, '') + path;
  }

  async #upstreamVersion(): Promise<string | null> {
    this.#version ??= fetch(this.#url(this.options.upstream, '/version'))
      .then(async (r) => (r.ok ? (((await r.json()) as { version?: string }).version ?? null) : null))
      .catch(() => null)
      .then((v) => {
        if (v === null) this.#version = null; // ask again next time
        return v;
      });
    return this.#version;
  }

  async #ready(res: ServerResponse): Promise<void> {
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    try {
      const health = await fetch(this.#url(this.options.upstream, '/health'));
      if (!health.ok) return json(503, { ready: false, reason: `upstream /health answered ${health.status}` });
      const models = ((await (await fetch(this.#url(this.options.upstream, '/v1/models'))).json()) as { data?: { id: string }[] }).data ?? [];
      const ids = models.map((m) => m.id);
      if (this.options.model ? !ids.includes(this.options.model) : ids.length === 0)
        return json(503, { ready: false, reason: `upstream does not list ${this.options.model ?? 'any model'} (it lists ${ids.join(', ') || 'none'})` });
      json(200, { ready: true, models: ids });
    } catch (err) {
      json(503, { ready: false, reason: `upstream ${this.options.upstream} unreachable: ${reason(err)}` });
    }
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/health') return void res.writeHead(this.#draining ? 503 : 200).end();
    if (req.method === 'GET' && path === '/ready') return this.#draining ? void res.writeHead(503).end() : this.#ready(res);
    if (req.method === 'GET' && path === '/metrics') {
      res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
      return void res.end(await this.metrics.registry.metrics());
    }
    const id = (req.headers['x-request-id'] as string | undefined) ?? randomUUID();
    if (!PASSTHROUGH.test(path)) return openaiError(res, 404, `the sidecar serves /v1/*, /tokenize, /detokenize, /version, /health, /ready and /metrics, not ${path}`, 'not_found', id);
    if (this.#draining) return openaiError(res, 503, 'the sidecar is shutting down', 'unavailable', id);
    this.#inFlight++;
    this.metrics.inFlight.inc();
    try {
      await this.#proxy(req, res, path, id);
    } catch (err) {
      // A client that hangs up mid-upload makes readBody throw; unhandled, that rejection would end the process.
      if (req.destroyed || res.destroyed) res.destroy();
      else openaiError(res, 400, `cannot read the request: ${(err as Error).message}`, 'invalid_request_error', id);
    } finally {
      this.metrics.inFlight.dec();
      if (--this.#inFlight === 0) for (const wake of this.#idle.splice(0)) wake();
    }
  }

  async #proxy(req: IncomingMessage, res: ServerResponse, path: string, id: string): Promise<void> {
    const route = path;
    let body: Buffer | undefined = req.method === 'GET' || req.method === 'HEAD' ? undefined : await readBody(req);
    let json: Record<string, unknown> | null = null;
    const guarded = Boolean(this.options.reference && this.options.sampleRate);
    // Parsing is skipped when neither the guard nor a guided_* key needs it: it grows with the prompt.
    if (body && (path === '/v1/chat/completions' || path === '/v1/completions') && (guarded || body.includes('"guided_'))) {
      try {
        json = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
      } catch {
        json = null; // not JSON: the upstream says what is wrong
      }
      if (json && typeof json === 'object') {
        const translated = translateGuided(json);
        if (translated && atLeast(await this.#upstreamVersion(), 0, 12)) {
          json = translated;
          body = Buffer.from(JSON.stringify(json));
          this.metrics.translated.inc();
        }
      }
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(k) && typeof v === 'string') headers[k] = v;
    headers['x-request-id'] = id;
    headers['accept-encoding'] = 'identity'; // pass the bytes as they are, no re-compression
    if (body) headers['content-length'] = String(body.length);
    let clientGone = false;
    res.on('close', () => {
      if (!res.writableFinished) {
        clientGone = true;
        outgoing?.destroy();
      }
    });
    let outgoing: ClientRequest | undefined;
    const t0 = performance.now();
    let upstream: IncomingMessage;
    try {
      if (res.destroyed) return;
      // node:http with a keep-alive pool rather than fetch: it costs ~1 ms less per request on a small CPU,
      // and this hop's cost is what the sidecar adds to every request.
      const target = new URL(this.#url(this.options.upstream, req.url ?? path));
      upstream = await new Promise<IncomingMessage>((resolve, reject) => {
        outgoing = (target.protocol === 'https:' ? httpsRequest : httpRequest)(target, { method: req.method, headers, agent: target.protocol === 'https:' ? this.#httpsAgent : this.#httpAgent }, resolve);
        outgoing.once('error', reject);
        outgoing.end(body);
      });
    } catch (err) {
      if (clientGone) return;
      this.metrics.upstreamErrors.inc({ kind: 'unreachable' });
      this.metrics.requests.inc({ route, status: '502' });
      return openaiError(res, 502, `upstream ${this.options.upstream} unreachable: ${reason(err)}`, 'upstream_error', id);
    }
    const status = upstream.statusCode ?? 502;
    if (status >= 500) this.metrics.upstreamErrors.inc({ kind: `status_${status}` });
    const out: Record<string, string | string[]> = { 'x-request-id': id };
    for (const [k, v] of Object.entries(upstream.headers))
      if (v !== undefined && !HOP_BY_HOP.has(k) && k !== 'content-encoding' && k !== 'x-request-id') out[k] = v;
    res.writeHead(status, out);
    const sse = (upstream.headers['content-type'] ?? '').includes('text/event-stream');
    if (sse) res.flushHeaders(); // the client learns the status before the first token; other answers carry headers with the body
    const counter = new SseTokenCounter();
    const decoder = new TextDecoder();
    let first: number | null = null;
    let last = 0;
    let tail = '';
    try {
      for await (const chunk of upstream as AsyncIterable<Buffer>) {
        res.write(chunk);
        if (!sse) continue;
        if (chunk.length) tail = (tail + chunk.subarray(-2).toString('latin1')).slice(-2);
        const n = counter.push(decoder.decode(chunk, { stream: true }));
        if (n > 0) {
          // Token events that arrive in one read are, to the client, 0 s apart (as vllm bench serve counts them).
          const now = performance.now();
          if (first === null) {
            first = now;
            this.metrics.ttft.observe({ route }, (now - t0) / 1000);
          } else this.metrics.itl.observe({ route }, (now - last) / 1000);
          for (let i = 1; i < n; i++) this.metrics.itl.observe({ route }, 0);
          last = now;
        }
      }
    } catch (err) {
      if (clientGone) return void res.destroy();
      this.metrics.upstreamErrors.inc({ kind: 'stream' });
      this.metrics.requests.inc({ route, status: 'stream_error' });
      // Headers are out, so no error status: end the stream the way vLLM ends one that fails (an error event, then
      // [DONE]), which the openai client raises as an APIError instead of a bare socket error. Only between events:
      // after half an event, the bytes would no longer parse, and cutting the connection is the honest answer.
      if (sse && (tail === '' || tail === '\n\n')) {
        const message = `upstream ${this.options.upstream} broke off the stream: ${reason(err)}`;
        res.end(`data: ${JSON.stringify({ error: { object: 'error', message, type: 'upstream_error', code: 502 } })}\n\ndata: [DONE]\n\n`);
      } else res.destroy();
      return;
    }
    if (clientGone) return;
    res.end();
    const t1 = performance.now();
    this.metrics.e2e.observe({ route }, (t1 - t0) / 1000);
    this.metrics.requests.inc({ route, status: String(status) });
    const tokens = counter.usageTokens ?? counter.tokens;
    if (sse && first !== null && tokens > 1) this.metrics.tpot.observe({ route }, (t1 - first) / 1000 / (tokens - 1));
    if (json && !sse && status < 300) this.#maybeGuard(path, json);
  }

  #maybeGuard(path: string, body: Record<string, unknown>): void {
    const rate = this.options.sampleRate ?? 0;
    if (!this.options.reference || rate <= 0 || body.stream === true) return;
    const every = Math.max(1, Math.round(1 / rate));
    if (this.#guardCount++ % every !== 0) return;
    const replay = { ...body, temperature: 0, n: 1, ...(path === '/v1/chat/completions' ? { logprobs: true } : { logprobs: 1 }) };
    const ask = async (base: string) => {
      const r = await fetch(this.#url(base, path), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(replay) });
      if (!r.ok) throw new Error(`${base} answered ${r.status}`);
      return logprobsOf(await r.json());
    };
    const job = (async () => {
      try {
        const [a, b] = await Promise.all([ask(this.options.upstream), ask(this.options.reference!)]);
        if (!a || !b) throw new Error('no choices');
        this.metrics.guardRequests.inc({ outcome: 'compared' });
        if (a.text === b.text) this.metrics.guardAgreement.inc();
        const diffs: number[] = [];
        for (let i = 0; i < Math.min(a.tokens.length, b.tokens.length) && a.tokens[i].token === b.tokens[i].token; i++)
          if (Number.isFinite(a.tokens[i].logprob) && Number.isFinite(b.tokens[i].logprob)) diffs.push(Math.abs(a.tokens[i].logprob - b.tokens[i].logprob));
        if (diffs.length) this.metrics.guardDivergence.observe(diffs.reduce((x, y) => x + y, 0) / diffs.length);
      } catch {
        this.metrics.guardRequests.inc({ outcome: 'failed' });
      }
    })();
    this.#guards.add(job);
    void job.finally(() => this.#guards.delete(job));
  }
}
