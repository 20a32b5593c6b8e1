import { spawnSync } from 'node:child_process';
import path from 'node:path';

import { packageRoot } from '../../core/src/native/index.js';
import { SlipstreamError } from '../../core/src/errors/index.js';
import { defineCommand } from '../command.js';

/** Each suite writes its table under bench/; suites load lazily so `slipstream` starts fast. */
const SUITES: Record<string, { table: string; run: (out: string) => Promise<void> }> = {
  attention: {
    table: 'attention-accuracy.md',
    run: async (out) => (await import('../../bench/attention.js')).runAttentionBench({ out }),
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
      step(path.join(root, '.venv', 'bin', 'python'), [path.join(root, 'bench', 'attention_speed.py'), '--out', out]);
    },
  },
  diffusion: {
    table: 'diffusion.md',
    run: async (out) => (await import('../../bench/diffusion.js')).runDiffusionBench({ out }),
  },
  linear: {
    table: 'linear.md',
    run: async (out) => (await import('../../bench/linear.js')).runLinearBench({ out }),
  },
};

export const benchCommand = defineCommand({
  name: 'bench',
  summary: `Runs a benchmark suite and writes its table under bench/ (suites: ${Object.keys(SUITES).join(', ')}).`,
  positionals: ['<suite>'],
  options: {
    out: { type: 'string', description: 'where to write the table (default bench/<suite>.md)' },
  },
  async run(args, io) {
    const name = args.positionals[0];
    const suite = SUITES[name];
    if (!suite)
      throw new SlipstreamError('SLIP_E_USAGE', `expected one of ${Object.keys(SUITES).join('|')} for <suite>, got ${JSON.stringify(name)}`);
    const out = args.options.out ?? path.join(packageRoot(), 'bench', suite.table);
    await suite.run(out);
    io.out.write(`wrote ${out}\n`);
    return 0;
  },
});
