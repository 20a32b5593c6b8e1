/**
 * `slipstream serve`'s Prometheus metrics. The engine-level ones carry vLLM's names and meanings
 * (../../../../shared/research/vllm.md §2.4), so routers and dashboards that read a vLLM server's
 * /metrics read this one unchanged; HTTP request counts are our own. One registry per server, so
 * several servers in one process (tests) keep apart.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

const LATENCY = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export class ServeMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'slipstream_serve_requests_total', help: 'HTTP requests answered, by route and status', labelNames: ['route', 'status'], registers: [this.registry] });
  readonly running = new Gauge({ name: 'vllm:num_requests_running', help: 'generations running now', labelNames: ['model_name'], registers: [this.registry] });
  readonly waiting = new Gauge({ name: 'vllm:num_requests_waiting', help: 'generations waiting for a slot (--max-concurrency)', labelNames: ['model_name'], registers: [this.registry] });
  readonly promptTokens = new Counter({ name: 'vllm:prompt_tokens_total', help: 'prompt tokens prefilled', labelNames: ['model_name'], registers: [this.registry] });
  readonly generationTokens = new Counter({ name: 'vllm:generation_tokens_total', help: 'tokens generated', labelNames: ['model_name'], registers: [this.registry] });
  readonly success = new Counter({ name: 'vllm:request_success_total', help: 'generations finished, by finish reason', labelNames: ['model_name', 'finished_reason'], registers: [this.registry] });
  readonly ttft = new Histogram({ name: 'vllm:time_to_first_token_seconds', help: 'request received -> first token generated', labelNames: ['model_name'], buckets: LATENCY, registers: [this.registry] });
  readonly e2e = new Histogram({ name: 'vllm:e2e_request_latency_seconds', help: 'request received -> answer complete', labelNames: ['model_name'], buckets: LATENCY, registers: [this.registry] });
  readonly queue = new Histogram({ name: 'vllm:request_queue_time_seconds', help: 'time waiting for a generation slot', labelNames: ['model_name'], buckets: LATENCY, registers: [this.registry] });
}
