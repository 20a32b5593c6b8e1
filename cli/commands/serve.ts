import { ModelServer } from '../../adapters/embedded/serve/server.js';
import { SlipstreamError } from '../../core/src/errors/index.js';
import { defineCommand } from '../command.js';

function integerOption(name: string, value: string | undefined, lo: number, hi: number): number | undefined {
  if (value === undefined) return undefined;
  const v = Number(value);
  if (!Number.isInteger(v) || v < lo || v > hi)
    throw new SlipstreamError('SLIP_E_USAGE', `expected an integer between ${lo} and ${hi} for --${name}, got ${JSON.stringify(value)} (see \`slipstream help serve\`)`);
  return v;
}

export const serveCommand = defineCommand({
  name: 'serve',
  summary: 'An OpenAI-compatible server (vLLM\'s routes: /v1/completions, /v1/chat/completions with SSE, /tokenize, /metrics, ...) over a Qwen3 model on the native runtime.',
  positionals: ['<model_dir>'],
  options: {
    host: { type: 'string', description: 'address to listen on', default: '127.0.0.1' },
    port: { type: 'string', description: 'port to listen on (0: any free port)', default: '8000' },
    'served-model-name': { type: 'string', description: 'the model id clients ask for (default: the folder\'s name)' },
    'max-concurrency': { type: 'string', description: 'generations running at once; the rest queue', default: '4' },
  },
  async run(args, io) {
    const o = args.options;
    const port = integerOption('port', o.port, 0, 65535);
    const maxConcurrency = integerOption('max-concurrency', o['max-concurrency'], 1, 1024);
    const server = await ModelServer.load(args.positionals[0]!, { host: o.host, port, maxConcurrency, ...(o['served-model-name'] ? { servedModelName: o['served-model-name'] } : {}) });
    let url: string;
    try {
      url = await server.listen();
    } catch (err) {
      await server.close();
      throw new SlipstreamError('SLIP_E_IO', `cannot listen on ${o.host}:${o.port}: ${(err as Error).message}`, { cause: err });
    }
    io.out.write(`slipstream serve: ${server.name} on ${url} (OpenAI API at ${url}/v1; max concurrency ${server.limiter.max})\n`);
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        io.err.write(`${signal}: finishing requests in flight\n`);
        void server.close().then(resolve);
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    return 0;
  },
});
