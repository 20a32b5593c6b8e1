import path from 'node:path';

import { runWorkflow } from '../../adapters/embedded/run.js';
import { loadWorkflow } from '../../adapters/embedded/workflow.js';
import { formatBytes } from '../../core/src/progress/index.js';
import { defineCommand } from '../command.js';

export const runCommand = defineCommand({
  name: 'run',
  summary: 'Runs an embedded workflow: the FP32 baseline and the accelerated pipeline on its prompts; writes GIFs, metrics.json and report.html to out/<name>-<time>/.',
  positionals: ['<workflow.json>'],
  options: {},
  async run(args, io) {
    const loaded = await loadWorkflow(args.positionals[0]!);
    const { dir, report } = await runWorkflow(loaded);
    const t = report.totals;
    const [base, acc] = report.pipelines;
    io.out.write(
      [
        `${report.videos.length} video(s), ${report.sampler.steps} ${report.sampler.name} steps each:`,
        `  baseline    ${t.baselineSeconds.toFixed(1)} s, weights ${formatBytes(base!.weightBytes)}`,
        `  accelerated ${t.acceleratedSeconds.toFixed(1)} s (${t.speedup.toFixed(2)}×), weights ${formatBytes(acc!.weightBytes)} (${t.weightReduction.toFixed(2)}× smaller)`,
        `  PSNR against the baseline: mean ${t.meanPsnr.toFixed(2)} dB, min ${t.minPsnr.toFixed(2)} dB; SSIM ${t.meanSsim.toFixed(4)}`,
        `report: ${path.relative(process.cwd(), path.join(dir, 'report.html')) || path.join(dir, 'report.html')}`,
        '',
      ].join('\n'),
    );
    return 0;
  },
});
