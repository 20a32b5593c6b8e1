import { capabilities } from '../../core/src/native/index.js';
import { defineCommand } from '../command.js';

export const infoCommand = defineCommand({
  name: 'info',
  summary: 'What this build of libslipstream can do here: version, CPU features, ISA, threads, CUDA, kernels.',
  positionals: [],
  options: { json: { type: 'boolean', description: 'print JSON' } },
  async run(args, io) {
    const c = capabilities();
    if (args.options.json) {
      io.out.write(JSON.stringify(c, null, 2) + '\n');
      return 0;
    }
    io.out.write(
      [
        `libslipstream ${c.version} (ABI ${c.abiVersion})`,
        `CPU features: ${c.cpuFeatures.join(' ') || 'none detected'}`,
        `ISA: ${c.isaActive} (best detected: ${c.isaDetected})`,
        `threads: ${c.numThreads} (SLIPSTREAM_NUM_THREADS)`,
        `CUDA: ${c.cuda.compiled ? `compiled, ${c.cuda.devices} device(s)` : 'not compiled'}`,
        `kernels: ${c.kernels.join(', ') || 'none'}`,
      ].join('\n') + '\n',
    );
    return 0;
  },
});
