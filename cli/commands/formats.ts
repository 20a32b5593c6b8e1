import { formatsReport, formatsTable } from '../../adapters/embedded/formats-report.js';
import { capabilities } from '../../core/src/native/index.js';
import { defineCommand } from '../command.js';

export const formatsCommand = defineCommand({
  name: 'formats',
  summary: 'What each number format costs on a transformer-shaped linear, measured here (error against FP32, speed).',
  positionals: [],
  options: {},
  async run(_args, io) {
    const c = capabilities();
    io.out.write(`libslipstream ${c.version}: ISA ${c.isaActive}, ${c.numThreads} threads, CUDA ${c.cuda.compiled ? `compiled, ${c.cuda.devices} device(s)` : 'not compiled'}\n`);
    io.out.write('One linear, M=64 tokens, K=N=1024, activations with outlier channels, against FP32:\n\n');
    io.out.write(formatsTable(await formatsReport()) + '\n');
    return 0;
  },
});
