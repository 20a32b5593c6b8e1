import { calibrate, writeProfile } from '../../adapters/embedded/calibrate.js';
import { loadWorkflow } from '../../adapters/embedded/workflow.js';
import { SlipstreamError } from '../../core/src/errors/index.js';
import { defineCommand } from '../command.js';

export const calibrateCommand = defineCommand({
  name: 'calibrate',
  summary: 'Fits the calibration profile of a workflow\'s model and sampler (DMPQ E_rel ≈ αΓ + β, TeaCache polynomial, MagCache ratios) on N prompts.',
  positionals: ['<workflow.json>'],
  options: {
    out: { type: 'string', required: true, description: 'the profile JSON to write' },
    prompts: { type: 'string', description: 'prompts separated by ","; default: the workflow\'s' },
    'target-error': { type: 'string', default: 'median', description: 'relative NVFP4 error a block may have, or "median" (of the measured errors)' },
  },
  async run(args, io) {
    const loaded = await loadWorkflow(args.positionals[0]!);
    const prompts = args.options.prompts?.split(',').map((p) => p.trim()).filter(Boolean) ?? loaded.workflow.prompts;
    const te = args.options['target-error']!;
    const targetError = te === 'median' ? 'median' : Number(te);
    if (targetError !== 'median' && !(targetError > 0 && Number.isFinite(targetError))) {
      throw new SlipstreamError('SLIP_E_USAGE', `expected a positive number or "median" for --target-error, got ${JSON.stringify(te)}`);
    }
    const profile = await calibrate(loaded, { prompts, targetError });
    await writeProfile(args.options.out!, profile);
    const d = profile.dmpq;
    io.out.write(
      `${args.options.out}: E_rel ≈ ${d.alpha.toFixed(4)}·Γ + ${d.beta.toFixed(4)} (r² ${d.r2.toFixed(3)}, ${d.samples} samples); ` +
        `NVFP4 below Γ ${d.gammaThreshold.toFixed(4)} (target error ${d.targetError.toFixed(4)})\n`,
    );
    return 0;
  },
});
