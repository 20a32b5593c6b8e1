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
