/**
 * The sidecar's Prometheus metrics, measured at the proxy with `vllm bench serve`'s definitions:
 * TTFT (request sent upstream -> first streamed token), inter-token latency (between streamed
 * token events), TPOT ((end - first token) / (output tokens - 1)), end-to-end latency, upstream
 * errors, and the quality guard's agreement and log-prob divergence.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

const LATENCY = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const TOKEN = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1];

export class SidecarMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'slipstream_requests_total', help: 'requests proxied, by route and status', labelNames: ['route', 'status'], registers: [this.registry] });
  readonly inFlight = new Gauge({ name: 'slipstream_requests_in_flight', help: 'requests being proxied', registers: [this.registry] });
  readonly ttft = new Histogram({ name: 'slipstream_time_to_first_token_seconds', help: 'time to the first streamed token', labelNames: ['route'], buckets: LATENCY, registers: [this.registry] });
  readonly itl = new Histogram({ name: 'slipstream_inter_token_latency_seconds', help: 'time between streamed token events', labelNames: ['route'], buckets: TOKEN, registers: [this.registry] });
  readonly tpot = new Histogram({ name: 'slipstream_time_per_output_token_seconds', help: '(end - first token) / (output tokens - 1), per request', labelNames: ['route'], buckets: TOKEN, registers: [this.registry] });
  readonly e2e = new Histogram({ name: 'slipstream_e2e_request_latency_seconds', help: 'request latency, end to end at the proxy', labelNames: ['route'], buckets: LATENCY, registers: [this.registry] });
  readonly upstreamErrors = new Counter({ name: 'slipstream_upstream_errors_total', help: 'upstream failures: unreachable, or a 5xx answer', labelNames: ['kind'], registers: [this.registry] });
  readonly translated = new Counter({ name: 'slipstream_guided_translated_total', help: 'requests whose guided_* parameters became structured_outputs', registers: [this.registry] });
  readonly guardRequests = new Counter({ name: 'slipstream_guard_requests_total', help: 'sampled requests also sent to the reference deployment', labelNames: ['outcome'], registers: [this.registry] });
  readonly guardAgreement = new Counter({ name: 'slipstream_guard_agreements_total', help: 'sampled requests whose output text equals the reference\'s', registers: [this.registry] });
  readonly guardDivergence = new Histogram({
    name: 'slipstream_guard_logprob_divergence',
    help: 'mean |log p(upstream token) - log p(reference token)| over the tokens both chose alike, per sampled request',
    buckets: [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3],
    registers: [this.registry],
  });
}
