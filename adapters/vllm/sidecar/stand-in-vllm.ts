/**
 * An in-process stand-in of vLLM's OpenAI server (vLLM does not run here), answering as
 * ../../../../shared/research/vllm.md §2 describes: /health, /v1/models, /version, chat and text
 * completions (with log-probs), SSE chunks ending in [DONE] with an optional usage chunk. Shared by
 * the sidecar's tests, its load test and `slipstream bench sidecar`, so all three talk to one
 * server. A fixed delay before the answer and between streamed tokens makes its timing known, so
 * whatever a client measures beyond it belongs to what sits in between.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StandInOptions {
  /** Before the first byte of an answer, ms. */
  delayMs?: number;
  /** Between streamed tokens, ms. */
  tokenDelayMs?: number;
  /** Keep every request in `seen` (off for load, where it would only grow). */
  record?: boolean;
}

export interface Seen {
  path: string;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown> | null;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function promptWords(body: Record<string, unknown>): number {
  const messages = (body.messages as { content?: unknown }[] | undefined) ?? [];
  const text = [body.prompt, ...messages.map((m) => m.content)].filter((t) => typeof t === 'string').join(' ');
  return text.split(/\s+/).filter(Boolean).length;
}

export class StandInVllm {
  server: Server | null = null;
  url = '';
  seen: Seen[] = [];
  version = '0.12.1';
  healthy = true;
  gate: Promise<void> = Promise.resolve();
  logprobs = [-0.1, -0.2];
  text = 'Hello';
  #open = () => {};

  constructor(readonly options: StandInOptions = {}) {}

  /** Streams stop after their first token until release(). */
  hold(): void {
    this.gate = new Promise((r) => (this.#open = r));
  }

  release(): void {
    this.#open();
  }

  /** Listens on `port` (0: any; the same port again after stop() is how a restart looks). */
  async start(port = 0): Promise<string> {
    const server = createServer((req, res) => {
      this.#answer(req, res).catch(() => res.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this.url;
  }

  get port(): number {
    return Number(new URL(this.url).port);
  }

  /** Like a killed server: connections in the middle of an answer are cut, not finished. */
  stop(): Promise<void> {
    const server = this.server;
    if (!server) return Promise.resolve();
    this.server = null;
    server.closeAllConnections();
    return new Promise((r) => server.close(() => r()));
  }

  async #answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let raw = '';
    for await (const c of req) raw += c;
    const path = req.url!.split('?')[0];
    const json = (status: number, b: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(b));
    };
    let body: Record<string, unknown> | null = null;
    try {
      body = raw ? (JSON.parse(raw) as Record<string, unknown>) : null;
    } catch {
      return json(400, { error: { message: 'body is not JSON', type: 'BadRequestError', code: 400 } });
    }
    if (this.options.record ?? true) this.seen.push({ path, headers: req.headers, body });
    if (path === '/health') return void res.writeHead(this.healthy ? 200 : 503).end();
    if (path === '/version') return json(200, { version: this.version });
    if (path === '/v1/models') return json(200, { object: 'list', data: [{ id: 'qwen3-mini', object: 'model', owned_by: 'vllm' }] });
    if (path === '/v1/fail') return json(500, { error: { message: 'engine dead' } });
    const chat = path === '/v1/chat/completions';
    if (!body || (!chat && path !== '/v1/completions')) return json(404, { error: { message: 'not found' } });

    const wanted = (body.max_completion_tokens ?? body.max_tokens) as number | undefined;
    // Without a token budget the answer is this.text in two pieces, which the tests spell out.
    const pieces = typeof wanted === 'number' ? Array.from({ length: wanted }, () => ' w') : [this.text.slice(0, 3), this.text.slice(3)];
    const usage = { prompt_tokens: promptWords(body), completion_tokens: pieces.length, total_tokens: promptWords(body) + pieces.length };
    if (this.options.delayMs) await sleep(this.options.delayMs);

    if (body.stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const event = (choice: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
        `data: ${JSON.stringify({ id: 'c1', object: chat ? 'chat.completion.chunk' : 'text_completion', created: 1, model: 'qwen3-mini', choices: [{ index: 0, ...choice }], ...extra })}\n\n`;
      const token = (text: string, finish: string | null = null) => event(chat ? { delta: text ? { content: text } : {}, finish_reason: finish } : { text, finish_reason: finish });
      if (chat) res.write(event({ delta: { role: 'assistant', content: '' }, finish_reason: null }));
      for (let i = 0; i < pieces.length && !res.destroyed; i++) {
        if (i > 0 && this.options.tokenDelayMs) await sleep(this.options.tokenDelayMs);
        res.write(token(pieces[i]));
        if (i === 0) await this.gate;
      }
      if (res.destroyed) return;
      res.write(token('', 'stop'));
      if ((body.stream_options as { include_usage?: boolean } | undefined)?.include_usage)
        res.write(`data: ${JSON.stringify({ id: 'c1', object: chat ? 'chat.completion.chunk' : 'text_completion', created: 1, model: 'qwen3-mini', choices: [], usage })}\n\n`);
      return void res.end('data: [DONE]\n\n');
    }
    const text = pieces.join('');
    if (chat) {
      const lp = body.logprobs ? { content: [{ token: pieces[0], logprob: this.logprobs[0], top_logprobs: [] }, { token: pieces[1], logprob: this.logprobs[1], top_logprobs: [] }] } : null;
      return json(200, {
        id: 'c2', object: 'chat.completion', created: 1, model: 'qwen3-mini',
        choices: [{ index: 0, message: { role: 'assistant', content: text }, logprobs: lp, finish_reason: 'stop' }],
        usage,
      });
    }
    return json(200, { id: 'c3', object: 'text_completion', created: 1, model: 'qwen3-mini', choices: [{ index: 0, text, logprobs: null, finish_reason: 'stop' }], usage });
  }
}
