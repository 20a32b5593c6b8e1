/**
 * `slipstream serve`: an OpenAI-compatible HTTP server over the native Qwen3 runtime, answering
 * the routes a vLLM server answers (../../../../shared/research/vllm.md §2.1) so the sidecar, the
 * openai client and `slipstream bench serve` work against it unchanged: /v1/models,
 * /v1/completions, /v1/chat/completions (whole or SSE), /tokenize, /detokenize, /version, /health
 * and /metrics. Each generation runs in its own session (KV cache); at most maxConcurrency run at
 * once and the rest queue; a client that hangs up stops its generation between two tokens; close()
 * stops taking requests and finishes those in flight.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, join, resolve } from 'node:path';

import { packageRoot } from '../../../core/src/native/index.js';
import { Qwen3Model } from '../../../core/src/runtime/index.js';
import { BpeTokenizer } from '../../../core/src/tokenizer/index.js';
import { chatPrompt } from './chat-template.js';
import { Limiter, generateText, type FinishReason, type StepLogprobs } from './engine.js';
import { ServeMetrics } from './metrics.js';
import { ApiError, badParam, isObject, parseChat, parseCompletion, type GenerationRequest, type Json } from './protocol.js';
import { chatBody, chunk, completionBody, usage, usageChunk, type Envelope } from './responses.js';

export interface ModelServerOptions {
  /** The model's id in /v1/models and requests; default the model folder's name. */
  servedModelName?: string;
  /** Generations running at once; the rest wait. Default 4. */
  maxConcurrency?: number;
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  /** The model folder, shown as the model card's root. */
  root?: string;
}

/** Bigger bodies are refused: prompts are capped by the context anyway. */
const MAX_BODY = 16 << 20;
/** OpenAI's default for completions; chat's default is the rest of the context. */
const COMPLETION_DEFAULT_TOKENS = 16;

const ROUTES: Record<string, string> = {
  '/health': 'GET',
  '/version': 'GET',
  '/metrics': 'GET',
  '/v1/models': 'GET',
  '/v1/completions': 'POST',
  '/v1/chat/completions': 'POST',
  '/tokenize': 'POST',
  '/detokenize': 'POST',
};

let versionCache: string | undefined;
function packageVersion(): string {
  try {
    versionCache ??= (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    versionCache = 'unknown';
  }
  return versionCache;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new ApiError(413, `expected a body of at most ${MAX_BODY} bytes, got more`, 'invalid_request_error', null, 'body_too_large');
    parts.push(c);
  }
  const text = Buffer.concat(parts).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ApiError(400, `the body is not valid JSON: ${(err as Error).message}`, 'invalid_request_error', null, 'invalid_json');
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

export class ModelServer {
  readonly metrics = new ServeMetrics();
  readonly server: Server;
  readonly name: string;
  readonly limiter: Limiter;
  readonly #created = Math.floor(Date.now() / 1000);
  readonly #owned: boolean;
  #inFlight = 0;
  #idle: (() => void)[] = [];
  #draining = false;

  /** Loads models/<dir> (config.json, safetensors, tokenizer.json); close() frees the model. */
  static async load(dir: string, options: ModelServerOptions = {}): Promise<ModelServer> {
    const [model, tokenizer] = await Promise.all([Qwen3Model.load(dir), BpeTokenizer.load(join(dir, 'tokenizer.json'))]);
    return new ModelServer(model, tokenizer, { servedModelName: basename(resolve(dir)), root: resolve(dir), ...options }, true);
  }

  /** Over a model the caller keeps (and frees), unless `owned`. */
  constructor(
    readonly model: Qwen3Model,
    readonly tokenizer: BpeTokenizer,
    readonly options: ModelServerOptions = {},
    owned = false,
  ) {
    this.name = options.servedModelName ?? 'model';
    const max = options.maxConcurrency ?? 4;
    if (!Number.isInteger(max) || max < 1) throw badParam('maxConcurrency', 'a positive integer', max);
    this.limiter = new Limiter(max);
    this.#owned = owned;
    this.server = createServer((req, res) => void this.#handle(req, res));
  }

  async listen(): Promise<string> {
    await new Promise<void>((ok, fail) => {
      this.server.once('error', fail);
      this.server.listen(this.options.port ?? 0, this.options.host ?? '127.0.0.1', () => ok());
    });
    const a = this.server.address() as AddressInfo;
    return `http://${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`;
  }

  /** Stops taking requests, finishes those in flight (queued ones too), then closes; frees a model it loaded. */
  async close(): Promise<void> {
    this.#draining = true;
    const closed = new Promise<void>((ok) => this.server.close(() => ok()));
    this.server.closeIdleConnections();
    if (this.#inFlight > 0) await new Promise<void>((ok) => this.#idle.push(ok));
    this.server.closeAllConnections();
    await closed;
    if (this.#owned) this.model.free();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    const route = ROUTES[path] !== undefined ? path : path.startsWith('/v1/models/') ? '/v1/models/{id}' : 'other';
    res.once('finish', () => this.metrics.requests.inc({ route, status: String(res.statusCode) }));
    if (this.#draining) {
      if (path === '/health') return void res.writeHead(503).end();
      return sendJson(res, 503, new ApiError(503, 'the server is shutting down', 'server_error', null, 'shutting_down').body(), { connection: 'close' });
    }
    this.#inFlight++;
    try {
      await this.#route(req, res, path);
    } catch (err) {
      const e = err instanceof ApiError ? err : new ApiError(500, `internal error: ${(err as Error).message}`);
      if (res.headersSent) res.destroy();
      else if (!res.destroyed) sendJson(res, e.status, e.body());
    } finally {
      if (--this.#inFlight === 0) for (const wake of this.#idle.splice(0)) wake();
    }
  }

  async #route(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const method = ROUTES[path] ?? (path.startsWith('/v1/models/') ? 'GET' : undefined);
    if (method === undefined) throw new ApiError(404, `no route ${path}; slipstream serve answers ${Object.keys(ROUTES).join(', ')}`, 'not_found_error', null, 'not_found');
    if (req.method !== method) {
      res.setHeader('allow', method);
      throw new ApiError(405, `expected ${method} for ${path}, got ${req.method}`, 'invalid_request_error', null, 'method_not_allowed');
    }
    if (path === '/health') return void res.writeHead(200).end();
    if (path === '/version') return sendJson(res, 200, { version: packageVersion() });
    if (path === '/metrics') {
      res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
      return void res.end(await this.metrics.registry.metrics());
    }
    if (path === '/v1/models') return sendJson(res, 200, { object: 'list', data: [this.#card()] });
    if (path.startsWith('/v1/models/')) {
      this.#checkModel(decodeURIComponent(path.slice('/v1/models/'.length)));
      return sendJson(res, 200, this.#card());
    }
    const body = await readJson(req);
    if (path === '/tokenize') return sendJson(res, 200, this.#tokenize(body));
    if (path === '/detokenize') return sendJson(res, 200, this.#detokenize(body));
    const chat = path === '/v1/chat/completions';
    return this.#generate(req, res, chat, chat ? parseChat(body) : parseCompletion(body));
  }

  #card() {
    return { id: this.name, object: 'model', created: this.#created, owned_by: 'slipstream', root: this.options.root ?? this.name, parent: null, max_model_len: this.model.config.maxContext, permission: [] };
  }

  #checkModel(model: unknown): void {
    if (model !== undefined && model !== null && model !== this.name)
      throw new ApiError(404, `the model ${JSON.stringify(model)} does not exist; this server serves ${JSON.stringify(this.name)}`, 'not_found_error', 'model', 'model_not_found');
  }

  #ids(tokens: unknown, param: string): number[] {
    const vocab = this.model.config.vocabSize;
    if (!Array.isArray(tokens) || !tokens.every((t) => Number.isInteger(t) && t >= 0 && t < vocab)) throw badParam(param, `an array of token ids in [0, ${vocab})`, tokens);
    return tokens as number[];
  }

  #tokenize(body: unknown): Json {
    if (!isObject(body)) throw badParam('body', 'a JSON object', body);
    this.#checkModel(body.model);
    let text: string;
    if (typeof body.prompt === 'string') text = body.prompt;
    else if (body.messages !== undefined) {
      const r = parseChat({ messages: body.messages });
      text = chatPrompt((r.prompt as { messages: [] }).messages, this.tokenizer).text;
    } else throw badParam('prompt', 'a string (or messages)', body.prompt);
    const tokens = this.tokenizer.encode(text);
    const strs = body.return_token_strs === true ? tokens.map((t) => this.tokenizer.idToToken(t) ?? '') : null;
    return { count: tokens.length, max_model_len: this.model.config.maxContext, tokens, token_strs: strs };
  }

  #detokenize(body: unknown): Json {
    if (!isObject(body)) throw badParam('body', 'a JSON object', body);
    this.#checkModel(body.model);
    return { prompt: this.tokenizer.decode(this.#ids(body.tokens, 'tokens')) };
  }

  /** Prompt ids, stop tokens and strings, and the token budget of a request; refuses what cannot fit. */
  #plan(chat: boolean, r: GenerationRequest) {
    this.#checkModel(r.model);
    let stopTokens = r.ignoreEos ? [] : [...this.model.eosTokenIds];
    let stop = r.stop;
    let promptIds: number[];
    if ('messages' in r.prompt) {
      const p = chatPrompt(r.prompt.messages, this.tokenizer);
      promptIds = this.tokenizer.encode(p.text);
      stopTokens = [...stopTokens, ...p.stopTokens];
      stop = [...stop, ...p.stopStrings];
    } else promptIds = 'ids' in r.prompt ? this.#ids(r.prompt.ids, 'prompt') : this.tokenizer.encode(r.prompt.text);
    if (promptIds.length === 0) throw badParam('prompt', 'a prompt of at least one token', '');
    const ctx = this.model.config.maxContext;
    const room = ctx - promptIds.length;
    const tooLong = (asked: number) =>
      new ApiError(400, `this model's maximum context length is ${ctx} tokens; the request asks for ${promptIds.length + asked} (${promptIds.length} in the prompt, ${asked} to generate)`, 'invalid_request_error', chat ? 'messages' : 'prompt', 'context_length_exceeded');
    if (room < 1) throw tooLong(1);
    if (r.maxTokens !== undefined && r.maxTokens > room) throw tooLong(r.maxTokens);
    const maxTokens = r.maxTokens ?? (chat ? room : Math.min(COMPLETION_DEFAULT_TOKENS, room));
    return { promptIds, stopTokens, stop, maxTokens };
  }

  async #generate(req: IncomingMessage, res: ServerResponse, chat: boolean, r: GenerationRequest): Promise<void> {
    const t0 = performance.now();
    const plan = this.#plan(chat, r);
    const model = { model_name: this.name };
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort(new Error('the client closed the connection'));
    });
    this.metrics.waiting.inc(model);
    let release: () => void;
    try {
      release = await this.limiter.acquire(abort.signal);
    } catch {
      return; // the client left while queued: nobody to answer
    } finally {
      this.metrics.waiting.dec(model);
    }
    this.metrics.queue.observe(model, (performance.now() - t0) / 1000);
    this.metrics.running.inc(model);
    this.metrics.promptTokens.inc(model, plan.promptIds.length);
    const envelope: Envelope = { id: `${chat ? 'chatcmpl' : 'cmpl'}-${(req.headers['x-request-id'] as string | undefined) ?? randomUUID()}`, created: Math.floor(Date.now() / 1000), model: this.name };
    const events = generateText(this.model, this.tokenizer, {
      ...plan,
      temperature: r.temperature,
      topP: r.topP,
      topK: r.topK,
      // A random seed, not 0: without one, OpenAI's sampling differs from call to call.
      seed: r.seed ?? randomBytes(6).readUIntBE(0, 6),
      logprobs: r.logprobs,
      signal: abort.signal,
    });
    const send = (obj: unknown) => res.write(`data: ${JSON.stringify(obj)}\n\n`);
    let text = '';
    const steps: StepLogprobs[] = [];
    let first = true;
    try {
      if (r.stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-request-id': envelope.id });
        res.flushHeaders();
        if (chat) send(chunk(envelope, true, { role: true }));
      }
      for await (const ev of events) {
        if (ev.kind === 'delta') {
          if (first && ev.token !== null) {
            first = false;
            this.metrics.ttft.observe(model, (performance.now() - t0) / 1000);
          }
          if (r.stream && (ev.text !== '' || ev.logprobs)) send(chunk(envelope, chat, { text: ev.text, logprobs: ev.logprobs, offset: text.length }));
          text += ev.text;
          if (ev.logprobs) steps.push(ev.logprobs);
          continue;
        }
        this.metrics.generationTokens.inc(model, ev.completionTokens);
        this.metrics.success.inc({ ...model, finished_reason: ev.finishReason });
        if (ev.finishReason === 'abort') return;
        const finish: FinishReason = ev.finishReason;
        const u = usage(plan.promptIds.length, ev.completionTokens);
        if (r.stream) {
          send(chunk(envelope, chat, { finish }));
          if (r.includeUsage) send(usageChunk(envelope, chat, u));
          res.end('data: [DONE]\n\n');
        } else {
          const logprobs = r.logprobs === null ? null : steps;
          sendJson(res, 200, chat ? chatBody(envelope, text, logprobs, finish, u) : completionBody(envelope, text, logprobs, finish, u), { 'x-request-id': envelope.id });
        }
        this.metrics.e2e.observe(model, (performance.now() - t0) / 1000);
      }
    } catch (err) {
      if (!r.stream || abort.signal.aborted) throw err;
      // Headers are out: end the stream as vLLM ends a failed one, an error event then [DONE].
      const e = err instanceof ApiError ? err : new ApiError(500, `generation failed: ${(err as Error).message}`);
      send(e.body());
      res.end('data: [DONE]\n\n');
    } finally {
      release();
      this.metrics.running.dec(model);
    }
  }
}
