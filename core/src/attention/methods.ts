/**
 * Every attention method by name, with its parameter schema: the one table that
 * `slipstream attention --method` and the attention benchmark read, so a method and its
 * parameters are declared once. Each entry runs on F32 q, k, v with the common options
 * (layout, causal, mask) and returns the output and, for sparse methods, the achieved sparsity.
 */
import { z } from 'zod';

import { SlipstreamError } from '../errors/index.js';
import { Tensor } from '../tensor/index.js';
import type { AttnOptions } from './common.js';
import { attnDense } from './dense.js';
import { sageOptionsSchema, attnSage } from './sage.js';
import { slaForward, slaOptionsSchema, slaRoute } from './sla.js';
import { attnSparse, sparseOptionsSchema } from './sparse.js';

export interface MethodResult {
  out: Tensor<'F32'>;
  /** Fraction of (query block, key block) work skipped; absent for dense methods. */
  sparsity?: number;
}

interface Method<S extends z.ZodType> {
  summary: string;
  params: S;
  run(q: Tensor, k: Tensor, v: Tensor, options: AttnOptions, params: z.output<S>): Promise<MethodResult>;
}

function method<S extends z.ZodType>(m: Method<S>): Method<S> {
  return m;
}

/** The Sage-specific options (the common ones come from the command line). */
const SAGE_PARAMS = sageOptionsSchema.pick({ granularity: true, smoothK: true, smoothQ: true, blockQ: true, blockK: true, warpQ: true });

/** SLA2 run training-free: the router's default, α and the output projection fixed. */
const slaRunSchema = slaOptionsSchema.extend({
  /** Weight of the sparse branch (learned per head in SLA2; here one value for all heads). */
  alpha: z.number().min(0).max(1).default(1),
  /** Output projection of the linear branch: zero (SLA's initialisation: the module starts as
   *  pure sparse attention) or identity (the linear branch added as computed). */
  projection: z.enum(['zero', 'identity']).default('zero'),
});

export const ATTENTION_METHODS = {
  dense: method({
    summary: 'FP32 tiled attention with online softmax (the baseline)',
    params: z.strictObject({}),
    run: (q, k, v, o) => attnDense(q, k, v, o),
  }),
  sage: method({
    summary: 'SageAttention2: INT8 QK (smooth-K), FP8 PV, fp32+fp32 two-level accumulation',
    params: SAGE_PARAMS,
    run: (q, k, v, o, p) => attnSage(q, k, v, { ...o, ...p, variant: 'sage2' }),
  }),
  sage2pp: method({
    summary: 'SageAttention2++: as sage with an FP16 inner PV accumulator (V scale bound 2.25)',
    params: SAGE_PARAMS,
    run: (q, k, v, o, p) => attnSage(q, k, v, { ...o, ...p, variant: 'sage2pp' }),
  }),
  sparse: method({
    summary: 'SpargeAttention2 block-sparse: Top-k, Top-p or both (hybrid) on pooled scores',
    params: sparseOptionsSchema,
    run: async (q, k, v, o, p) => {
      const r = await attnSparse(q, k, v, o, p);
      return { out: r.out, sparsity: r.sparsity };
    },
  }),
  sla: method({
    summary: 'SLA2 sparse-linear attention, training-free router (critical / marginal / negligible)',
    params: slaRunSchema,
    run: async (q, k, v, o, p) => {
      if (o.mask || o.cuSeqlens) throw new SlipstreamError('SLIP_E_UNSUPPORTED', 'sla takes no mask and no varlen input');
      const { alpha, projection, ...sla } = p;
      const attn = { layout: o.layout, causal: o.causal, scale: o.scale };
      const { route, sparsity } = slaRoute(q, k, attn, sla);
      const d = q.shape[q.rank - 1]!;
      const heads = (o.layout ?? 'HND') === 'HND' ? q.shape[1]! : q.shape[2]!;
      const projW = Tensor.zeros('F32', [d, d]);
      if (projection === 'identity') for (let i = 0; i < d; i += 1) projW.data[i * d + i] = 1;
      const weights = { alpha: new Tensor('F32', [heads], new Float32Array(heads).fill(alpha)), projW };
      return { out: await slaForward(q, k, v, route, weights, attn, sla), sparsity };
    },
  }),
} as const;

export type AttentionMethod = keyof typeof ATTENTION_METHODS;
export const ATTENTION_METHOD_NAMES = Object.keys(ATTENTION_METHODS) as AttentionMethod[];

/** Validates `params` for `name` (strict: unknown keys are errors naming their path) and runs it. */
export async function runAttentionMethod(
  name: AttentionMethod,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: AttnOptions,
  params: unknown = {},
): Promise<MethodResult> {
  const m = ATTENTION_METHODS[name] as Method<z.ZodType>;
  if (!m) throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected one of ${ATTENTION_METHOD_NAMES.join('|')} for method, got ${JSON.stringify(name)}`);
  const r = m.params.safeParse(params ?? {});
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `invalid params${issue.path.length ? `.${issue.path.join('.')}` : ''} for ${name}: ${issue.message}`);
  }
  return m.run(q, k, v, options, r.data);
}
