import { PREPARE_SCHEMES, prepare, type PrepareScheme } from '../../adapters/vllm/prepare.js';
import { activationRangesSchema } from '../../core/src/checkpoint/index.js';
import { SlipstreamError } from '../../core/src/errors/index.js';
import { parseJsonFile } from '../../core/src/schema/index.js';
import { defineCommand } from '../command.js';

const MiB = 2 ** 20;

export const prepareCommand = defineCommand({
  name: 'prepare',
  summary: 'A Hugging Face model folder into one stock vLLM serves: compressed-tensors weights, index and quantization_config.',
  positionals: ['<hf_model_dir>'],
  options: {
    scheme: { type: 'string', choices: Object.keys(PREPARE_SCHEMES), required: true, description: 'the quantization scheme' },
    out: { type: 'string', required: true, description: 'the new model folder (written beside it, then renamed)' },
    ignore: { type: 'string', description: 'comma-separated modules or re:<regex> left unquantized (default lm_head,re:.*embed_tokens$)' },
    'input-amax': { type: 'string', description: 'nvfp4, fp8: JSON {"<module>": max |activation|} for the static input scales' },
    'max-shard-mib': { type: 'string', description: 'largest output shard in MiB', default: '4096' },
    prune: { type: 'string', description: 'pruning masks (slipstream_torch.ddp.save_masks) folded in first: a physically smaller model' },
    'round-to': { type: 'string', description: 'with --prune: pad each layer\'s MLP width to a multiple of this with zero channels', default: '1' },
    'dry-run': { type: 'boolean', description: 'print the plan and the sizes, write nothing' },
    quiet: { type: 'boolean', description: 'no progress output' },
  },
  async run(args, io) {
    const o = args.options;
    const shardMib = Number(o['max-shard-mib']);
    if (!Number.isFinite(shardMib) || shardMib <= 0)
      throw new SlipstreamError('SLIP_E_USAGE', `expected a positive --max-shard-mib, got ${JSON.stringify(o['max-shard-mib'])}`);
    const roundTo = Number(o['round-to']);
    if (!Number.isInteger(roundTo) || roundTo < 1)
      throw new SlipstreamError('SLIP_E_USAGE', `expected a positive whole --round-to, got ${JSON.stringify(o['round-to'])}`);
    // SIGINT / SIGTERM stop between tensors: prepare removes its temporary folder and the output
    // folder is never created. (SIGKILL cannot be caught: the next run removes what it left.)
    const stop = new AbortController();
    const onSignal = (sig: NodeJS.Signals) => stop.abort(sig);
    process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
    const report = await prepare(args.positionals[0], {
      signal: stop.signal,
      prune: o.prune,
      roundTo,
      scheme: o.scheme as PrepareScheme,
      out: o.out!,
      ignore: o.ignore?.split(',').map((s) => s.trim()).filter(Boolean),
      inputAmax: o['input-amax'] ? await parseJsonFile(o['input-amax'], activationRangesSchema) : undefined,
      dryRun: o['dry-run'],
      maxShardBytes: shardMib * MiB,
      progress: o.quiet || o['dry-run'] ? undefined : io.err,
    }).finally(() => process.off('SIGINT', onSignal).off('SIGTERM', onSignal));
    const mib = (b: number) => `${(b / MiB).toFixed(1)} MiB`;
    io.out.write(
      `${o['dry-run'] ? 'plan' : o.out}: ${report.quantized} linears to ${o.scheme}, ${report.copied} other tensors${o.prune ? ' (pruned)' : ''}; ` +
        `${mib(report.bytesIn)} -> ${mib(report.bytesOut)} (${(report.bytesIn / Math.max(1, report.bytesOut)).toFixed(2)}x smaller) in ${report.shards.length} shard(s)\n`,
    );
    return 0;
  },
});
