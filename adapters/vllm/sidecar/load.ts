/**
 * The sidecar's load test: many streaming clients, each sending one request after another through
 * a sidecar to a stand-in vLLM, while the stand-in is killed (connections cut mid-answer) and
 * started again on the same port. What must hold: every request ends in a whole answer or a clean
 * error (an HTTP error status, or an SSE error event that the openai client raises as APIError),
 * none runs into its deadline, and the sidecar answers /health afterwards with nothing left in
 * flight. The vitest run is short; `slipstream bench sidecar` runs the same code for 30 s.
 */
import { requestBody, sendRequest, type Outcome, type RequestRecord } from '../bench-serve.js';
import { Sidecar } from './sidecar.js';
import { StandInVllm } from './stand-in-vllm.js';

export interface SidecarLoadOptions {
  clients?: number;
  durationMs: number;
  /** When the upstream is killed (default: half way). */
  stopAtMs?: number;
  /** How long it stays down before it listens again. */
  downMs?: number;
  /** Per request. */
  deadlineMs?: number;
  /** Tokens per answer and the gap between them: long enough that the kill lands mid-stream. */
  tokens?: number;
  tokenDelayMs?: number;
  /** A client's pause after a failed request, as a client with retries would; without it, 200 clients
   * turn the downtime into a loop of instant 502s that starves everything else of CPU. */
  backoffMs?: number;
}

export interface SidecarLoadResult {
  options: Required<SidecarLoadOptions>;
  requests: RequestRecord[];
  outcomes: Record<Outcome, number>;
  /** Requests that ended neither whole nor with a clean error. */
  unclean: RequestRecord[];
  /** Whole answers that started after the upstream came back. */
  okAfterRestart: number;
  errors: { message: string; count: number }[];
  healthAfter: number;
  inFlightAfter: number;
  durationS: number;
  /** ms after the start. */
  restartedAtMs: number;
}

const CLEAN: ReadonlySet<Outcome> = new Set(['ok', 'http_error', 'error_event']);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function runSidecarLoad(opts: SidecarLoadOptions): Promise<SidecarLoadResult> {
  const o: Required<SidecarLoadOptions> = {
    clients: 200, stopAtMs: opts.durationMs / 2, downMs: Math.min(1000, opts.durationMs / 5), deadlineMs: 15_000, tokens: 10, tokenDelayMs: 100, backoffMs: 250, ...opts,
  };
  const upstream = new StandInVllm({ tokenDelayMs: o.tokenDelayMs, record: false });
  await upstream.start();
  const sidecar = new Sidecar({ upstream: upstream.url });
  const url = await sidecar.listen();
  const body = requestBody('/v1/chat/completions', 'qwen3-mini', 'hello there', o.tokens, true);
  const requests: RequestRecord[] = [];
  let restartedAt = Infinity;
  try {
    const t0 = performance.now();
    const end = t0 + o.durationMs;
    const chaos = (async () => {
      if (o.stopAtMs >= o.durationMs) return; // a run without the restart, to compare with
      await sleep(o.stopAtMs);
      const port = upstream.port;
      await upstream.stop();
      await sleep(o.downMs);
      await upstream.start(port);
      restartedAt = performance.now() - t0;
    })();
    const client = async () => {
      while (performance.now() < end) {
        const r = await sendRequest(url, '/v1/chat/completions', body, { timeoutMs: o.deadlineMs, origin: t0 });
        requests.push(r);
        if (r.outcome !== 'ok') await sleep(o.backoffMs);
      }
    };
    await Promise.all([chaos, ...Array.from({ length: o.clients }, client)]);
    const durationS = (performance.now() - t0) / 1000;

    const outcomes = { ok: 0, http_error: 0, error_event: 0, stream_error: 0, connection_error: 0, timeout: 0 } satisfies Record<Outcome, number>;
    const counts = new Map<string, number>();
    for (const r of requests) {
      outcomes[r.outcome]++;
      if (r.outcome !== 'ok') counts.set(r.error ?? r.outcome, (counts.get(r.error ?? r.outcome) ?? 0) + 1);
    }
    const health = await fetch(`${url}/health`, { signal: AbortSignal.timeout(5000) });
    const metrics = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
    const inFlight = Number(/^slipstream_requests_in_flight (\S+)$/m.exec(metrics)?.[1] ?? NaN);
    return {
      options: o,
      requests,
      outcomes,
      unclean: requests.filter((r) => !CLEAN.has(r.outcome)),
      okAfterRestart: requests.filter((r) => r.outcome === 'ok' && r.startMs >= restartedAt).length,
      errors: [...counts].map(([message, count]) => ({ message: message.replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:PORT'), count })).sort((a, b) => b.count - a.count),
      healthAfter: health.status,
      inFlightAfter: inFlight,
      durationS,
      restartedAtMs: restartedAt,
    };
  } finally {
    await sidecar.close();
    await upstream.stop();
  }
}
