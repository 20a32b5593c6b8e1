import { SCHEMES, activationRangesSchema, checkWeight, ignoreMatcher, outputSpecs, quantizeModule, type OutputSpec, type Scheme } from '../../core/src/checkpoint/index.js';
import { SlipstreamError } from '../../core/src/errors/index.js';
import { createProgress } from '../../core/src/progress/index.js';
import { parseJsonFile } from '../../core/src/schema/index.js';
import { SafetensorsReader, SafetensorsWriter } from '../../core/src/safetensors/index.js';
import { defineCommand } from '../command.js';

async function readInputRanges(path: string | undefined): Promise<Record<string, number> | undefined> {
  return path === undefined ? undefined : parseJsonFile(path, activationRangesSchema);
}

export const quantizeCommand = defineCommand({
  name: 'quantize',
  summary: 'Quantizes every 2-D `P.weight` of a safetensors file into the tensors compressed-tensors saves for that format; copies the rest.',
  positionals: ['<in.safetensors>'],
  options: {
    format: { type: 'string', choices: SCHEMES, required: true, description: 'the compressed-tensors scheme' },
    out: { type: 'string', required: true, description: 'output .safetensors (written to a temp name, then renamed)' },
    ignore: { type: 'string', description: 'comma-separated module names or re:<regex> to leave unquantized (e.g. lm_head)' },
    'input-amax': { type: 'string', description: 'nvfp4, fp8-static: JSON file {"<module>": max |activation|} for the static input scale' },
    'allow-nonfinite': { type: 'boolean', description: 'quantize weights holding NaN/Inf (left out of the scales) instead of refusing them' },
    quiet: { type: 'boolean', description: 'no progress output' },
  },
  async run(args, io) {
    const scheme = args.options.format as Scheme;
    const ignored = ignoreMatcher((args.options.ignore ?? '').split(',').map((e) => e.trim()).filter(Boolean));
    const ranges = await readInputRanges(args.options['input-amax']);
    const reader = await SafetensorsReader.open(args.positionals[0]);
    try {
      // Plan the whole output from the header first: the writer needs every name, dtype and
      // shape upfront so it can stream tensors without holding the file in memory.
      const plan: { source: string; module?: string; outputs: OutputSpec[] }[] = [];
      for (const info of reader.infos()) {
        const module = info.name.endsWith('.weight') ? info.name.slice(0, -'.weight'.length) : undefined;
        if (module !== undefined && info.shape.length === 2 && !ignored(module)) {
          checkWeight(scheme, info.name, info.dtype, info.shape);
          if ((scheme === 'nvfp4' || scheme === 'fp8-static') && ranges?.[module] === undefined)
            throw new SlipstreamError(
              'SLIP_E_INVALID_ARGUMENT',
              `${scheme} stores a static input scale for ${module}, which needs its activation range: pass --input-amax ranges.json with an entry for it, or use --format ${scheme === 'nvfp4' ? 'nvfp4a16 (weight-only)' : 'fp8 (dynamic per-token activations)'}`,
            );
          plan.push({ source: info.name, module, outputs: outputSpecs(scheme, module, info.shape) });
        } else {
          plan.push({ source: info.name, outputs: [{ name: info.name, dtype: info.dtype, shape: [...info.shape] }] });
        }
      }
      const quantized = plan.filter((p) => p.module !== undefined).length;
      const writer = await SafetensorsWriter.create(args.options.out!, plan.flatMap((p) => p.outputs), { metadata: reader.metadata });
      const progress = createProgress({ total: plan.length, label: `quantize ${scheme}`, stream: io.err, enabled: !args.options.quiet });
      try {
        for (const p of plan) {
          if (p.module === undefined) {
            for await (const chunk of reader.chunks(p.source)) await writer.write(p.source, chunk);
          } else {
            const tensors = await quantizeModule(scheme, p.module, await reader.tensor(p.source), {
              allowNonFinite: args.options['allow-nonfinite'],
              inputAmax: ranges?.[p.module],
            });
            for (let i = 0; i < tensors.length; i += 1) await writer.writeTensor(p.outputs[i].name, tensors[i]);
          }
          progress.tick();
        }
        await writer.finish();
      } catch (err) {
        await writer.abort();
        throw err;
      } finally {
        progress.finish();
      }
      io.out.write(`${args.options.out}: ${quantized} weights quantized to ${scheme}, ${plan.length - quantized} tensors copied\n`);
      return 0;
    } finally {
      await reader.close();
    }
  },
});
