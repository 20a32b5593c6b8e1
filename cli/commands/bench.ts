import { spawnSync } from 'node:child_process';
import path from 'node:path';

import { packageRoot } from '../../core/src/native/index.js';
import { SlipstreamError } from '../../core/src/errors/index.js';
import { writeFileAtomic } from '../../core/src/fs/index.js';
import { defineCommand, type ParsedArgs } from '../command.js';
import { numberOption } from './sidecar.js';

const OPTIONS = {
  out: { type: 'string', description: 'where to write the table (default bench/<suite>.md; serve: none, it prints its result)' },
  duration: { type: 'string', description: 'sidecar: seconds of the load test', default: '30' },
  url: { type: 'string', description: 'serve: the OpenAI-compatible server, e.g. http://127.0.0.1:8000' },
  model: { type: 'string', description: 'serve: the model to ask (default: the first /v1/models lists)' },
  'num-prompts': { type: 'string', description: 'serve: requests to send', default: '1000' },
  concurrency: { type: 'string', description: 'serve: requests in flight at most (default: no limit)' },
  'request-rate': { type: 'string', description: 'serve: requests per second, Poisson arrivals (default: all at once)' },
  'input-len': { type: 'string', description: 'serve: prompt length in words', default: '1024' },
  'output-len': { type: 'string', description: 'serve: output tokens per request (ignore_eos)', default: '128' },
  endpoint: { type: 'string', description: 'serve: the API to load', choices: ['/v1/completions', '/v1/chat/completions'], default: '/v1/completions' },
  seed: { type: 'string', description: 'serve: seed of the prompts and arrivals', default: '0' },
} as const;

type Options = ParsedArgs<typeof OPTIONS>['options'];

/**
 * Each suite writes its table under bench/ (serve only with --out: it measures someone's server);
 * suites load lazily so `slipstream` starts fast.
 */
const SUITES: Record<string, { table?: string; run: (out: string | undefined, options: Options, io: { write(s: string): unknown }) => Promise<void> }> = {
  attention: {
    table: 'attention-accuracy.md',
    run: async (out) => (await import('../../bench/attention.js')).runAttentionBench({ out: out! }),
  },
  'attention-speed': {
    table: 'attention-speed.md',
    // Side by side with PyTorch's CPU SDPA, in one Python process: the project's venv has torch.
    run: async (out) => {
      const root = packageRoot();
      const step = (cmd: string, args: string[]) => {
        const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
        if (r.status !== 0) throw new SlipstreamError('SLIP_E_IO', `${[cmd, ...args].join(' ')} failed with exit code ${String(r.status)}`);
      };
      step(process.execPath, [path.join(root, 'scripts', 'python-env.js')]);
      step(path.join(root, '.venv', 'bin', 'python'), [path.join(root, 'bench', 'attention_speed.py'), '--out', out!]);
    },
  },
  diffusion: {
    table: 'diffusion.md',
    run: async (out) => (await import('../../bench/diffusion.js')).runDiffusionBench({ out: out! }),
  },
  linear: {
    table: 'linear.md',
    run: async (out) => (await import('../../bench/linear.js')).runLinearBench({ out: out! }),
  },
  serve: {
    run: async (out, o, io) => {
      if (!o.url || !/^https?:\/\//.test(o.url)) throw new SlipstreamError('SLIP_E_USAGE', `expected an http(s) URL for --url, got ${JSON.stringify(o.url)} (see \`slipstream help bench\`)`);
      const n = (name: keyof Options, lo: number, hi: number) => numberOption('bench', name, o[name] as string | undefined, lo, hi);
      const serve = await import('../../adapters/vllm/bench-serve.js');
      const result = await serve.runServeBench({
        url: o.url,
        model: o.model,
        numPrompts: n('num-prompts', 1, 1e7)!,
        concurrency: n('concurrency', 1, 1e6),
        requestRate: n('request-rate', 1e-6, 1e9),
        inputLen: n('input-len', 1, 1e6)!,
        outputLen: n('output-len', 1, 1e6)!,
        endpoint: o.endpoint as '/v1/completions' | '/v1/chat/completions',
        seed: n('seed', 0, 2 ** 32 - 1),
      });
      io.write(serve.formatServeResult(result));
      if (out) await writeFileAtomic(out, serve.serveResultMarkdown(result, `slipstream bench ${process.argv.slice(3).join(' ')}`));
    },
  },
  sidecar: {
    table: 'sidecar.md',
    run: async (out, o) => (await import('../../bench/sidecar.js')).runSidecarBench({ out: out!, seconds: numberOption('bench', 'duration', o.duration, 1, 3600) }),
  },
};

export const benchCommand = defineCommand({
  name: 'bench',
  summary: `Runs a benchmark suite and writes its table under bench/ (suites: ${Object.keys(SUITES).join(', ')}).`,
  positionals: ['<suite>'],
  options: OPTIONS,
  async run(args, io) {
    const name = args.positionals[0];
    const suite = SUITES[name];
    if (!suite)
      throw new SlipstreamError('SLIP_E_USAGE', `expected one of ${Object.keys(SUITES).join('|')} for <suite>, got ${JSON.stringify(name)}`);
    const out = args.options.out ?? (suite.table ? path.join(packageRoot(), 'bench', suite.table) : undefined);
    await suite.run(out, args.options, io.out);
    if (out) io.out.write(`wrote ${out}\n`);
    return 0;
  },
});
