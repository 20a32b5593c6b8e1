import { Sidecar } from '../../adapters/vllm/sidecar/sidecar.js';
import { SlipstreamError } from '../../core/src/errors/index.js';
import { defineCommand } from '../command.js';

/** A numeric option of `command` in [lo, hi], or undefined when absent. */
export function numberOption(command: string, name: string, value: string | undefined, lo: number, hi: number): number | undefined {
  if (value === undefined) return undefined;
  const v = Number(value);
  if (!Number.isFinite(v) || v < lo || v > hi)
    throw new SlipstreamError('SLIP_E_USAGE', `expected --${name} between ${lo} and ${hi}, got ${JSON.stringify(value)} (see \`slipstream help ${command}\`)`);
  return v;
}

export const sidecarCommand = defineCommand({
  name: 'sidecar',
  summary: 'Next to a vLLM server: OpenAI API passthrough (SSE unbuffered), request ids, readiness, Prometheus metrics, an optional quality guard.',
  positionals: [],
  options: {
    upstream: { type: 'string', description: 'the vLLM server, e.g. http://127.0.0.1:8000', required: true },
    reference: { type: 'string', description: 'a reference deployment the quality guard compares with' },
    'sample-rate': { type: 'string', description: 'share of requests the quality guard replays to both (0..1)', default: '0.01' },
    model: { type: 'string', description: 'the model readiness waits for (default: any the upstream lists)' },
    host: { type: 'string', description: 'address to listen on', default: '127.0.0.1' },
    port: { type: 'string', description: 'port to listen on', default: '8100' },
  },
  async run(args, io) {
    const o = args.options;
    for (const [name, url] of [['upstream', o.upstream], ['reference', o.reference]] as const)
      if (url !== undefined && !/^https?:\/\//.test(url))
        throw new SlipstreamError('SLIP_E_USAGE', `expected an http(s) URL for --${name}, got ${JSON.stringify(url)}`);
    const sidecar = new Sidecar({
      upstream: o.upstream!,
      reference: o.reference,
      sampleRate: numberOption('sidecar', 'sample-rate', o['sample-rate'], 0, 1),
      model: o.model,
      host: o.host,
      port: numberOption('sidecar', 'port', o.port, 0, 65535),
    });
    const url = await sidecar.listen();
    io.out.write(`slipstream sidecar on ${url} -> ${o.upstream}${o.reference ? ` (guard: ${o.reference})` : ''}; /ready, /metrics\n`);
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        io.err.write(`${signal}: draining requests in flight\n`);
        void sidecar.close().then(resolve);
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    return 0;
  },
});
