import { performance } from 'node:perf_hooks';

import { ATTENTION_METHOD_NAMES, runAttentionMethod, type AttentionMethod } from '../../core/src/attention/methods.js';
import { gatherRows, referenceRows, sampleQueryRows } from '../../core/src/attention/reference.js';
import { SlipstreamError } from '../../core/src/errors/index.js';
import { cosineSimilarity, relativeL1, rmse } from '../../core/src/metrics/index.js';
import { parseJsonText } from '../../core/src/schema/index.js';
import { SafetensorsReader, writeSafetensors } from '../../core/src/safetensors/index.js';
import { Tensor } from '../../core/src/tensor/index.js';
import { defineCommand } from '../command.js';

async function readInputs(file: string): Promise<{ q: Tensor<'F32'>; k: Tensor<'F32'>; v: Tensor<'F32'>; mask?: Tensor }> {
  const reader = await SafetensorsReader.open(file);
  try {
    const get = async (name: string) => {
      if (!reader.has(name)) throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `${file}: expected a tensor named "${name}" (tensors: ${reader.names().join(', ')})`);
      const t = await reader.tensor(name);
      if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16')
        throw new SlipstreamError('SLIP_E_DTYPE_MISMATCH', `${file}: expected F32, F16 or BF16 for ${name}, got ${t.dtype}`);
      if (t.rank !== 4) throw new SlipstreamError('SLIP_E_SHAPE_MISMATCH', `${file}: expected a 4-D tensor for ${name} ([B, H, N, D] in HND, [B, N, H, D] in NHD), got [${t.shape.join(', ')}]`);
      // F16 and BF16 widen to F32 exactly: no value changes, so no overflow either.
      return t.dtype === 'F32' ? (t as Tensor<'F32'>) : new Tensor('F32', t.shape, t.toFloat32());
    };
    const out = { q: await get('q'), k: await get('k'), v: await get('v') };
    if (!reader.has('mask')) return out;
    const mask = await reader.tensor('mask');
    if (mask.dtype !== 'U8' && mask.dtype !== 'F32') throw new SlipstreamError('SLIP_E_DTYPE_MISMATCH', `${file}: expected U8 (1 = attend) or F32 (added) for mask, got ${mask.dtype}`);
    return { ...out, mask };
  } finally {
    await reader.close();
  }
}

export const attentionCommand = defineCommand({
  name: 'attention',
  summary: 'Runs one attention method on captured q/k/v and reports its error against float64, the sparsity and the time.',
  positionals: [],
  options: {
    method: { type: 'string', choices: ATTENTION_METHOD_NAMES, required: true, description: 'the attention method' },
    in: { type: 'string', required: true, description: 'safetensors with q, k, v (F32/F16/BF16, 4-D) and optionally mask (U8 or F32 [B|1, H|1, Nq, Nk])' },
    out: { type: 'string', description: 'write the output as tensor "o" (F32, same layout) to this safetensors file' },
    params: { type: 'string', description: "the method's parameters as JSON, e.g. '{\"topk\":0.1,\"topp\":0.9}' for sparse" },
    layout: { type: 'string', choices: ['HND', 'NHD'], default: 'HND', description: 'tensor layout' },
    causal: { type: 'boolean', description: 'causal (query i sees keys j <= i + Nk - Nq)' },
    'reference-rows': { type: 'string', default: '64', description: 'query rows per head compared with the float64 reference' },
  },
  async run(args, io) {
    const method = args.options.method as AttentionMethod;
    const params = args.options.params === undefined ? {} : parseJsonText(args.options.params, '--params');
    const rowsPerHead = Number(args.options['reference-rows']);
    if (!Number.isInteger(rowsPerHead) || rowsPerHead < 1)
      throw new SlipstreamError('SLIP_E_USAGE', `expected a positive integer for --reference-rows, got ${JSON.stringify(args.options['reference-rows'])}`);
    const { q, k, v, mask } = await readInputs(args.options.in!);
    const layout = args.options.layout as 'HND' | 'NHD';
    const options = { layout, causal: args.options.causal, ...(mask ? { mask } : {}) };
    const start = performance.now();
    const result = await runAttentionMethod(method, q, k, v, options, params);
    const ms = performance.now() - start;
    const rows = sampleQueryRows({ q, k, v, layout }, rowsPerHead);
    const ref = referenceRows({ q, k, v, mask, layout, causal: args.options.causal }, rows).values;
    const got = gatherRows(result.out, layout, rows);
    if (args.options.out) await writeSafetensors(args.options.out, { o: result.out });
    io.out.write(
      [
        `method: ${method}  q [${q.shape.join(', ')}]  k [${k.shape.join(', ')}]  ${layout}${args.options.causal ? ' causal' : ''}${mask ? ' masked' : ''}`,
        `against float64 on ${rows.length} query rows (${Math.min(rowsPerHead, q.shape[layout === 'HND' ? 2 : 1]!)} per head):`,
        `  cosine similarity  ${cosineSimilarity(got, ref).toFixed(6)}`,
        `  relative L1        ${relativeL1(got, ref).toExponential(3)}`,
        `  RMSE               ${rmse(got, ref).toExponential(3)}`,
        ...(result.sparsity !== undefined ? [`  sparsity           ${(result.sparsity * 100).toFixed(1)}% of blocks skipped`] : []),
        `  time               ${ms.toFixed(1)} ms`,
        ...(args.options.out ? [`wrote ${args.options.out}`] : []),
      ].join('\n') + '\n',
    );
    return 0;
  },
});
