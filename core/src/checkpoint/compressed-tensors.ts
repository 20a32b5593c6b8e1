/**
 * The tensors compressed-tensors saves for one quantized Linear, per scheme (research note
 * vllm.md §1.2–1.3): names, dtypes and shapes, and the codec call that fills them.
 *
 *   scheme     CT format              tensors of module P (weight [N, K])
 *   int8       int-quantized          P.weight I8 [N,K], P.weight_scale [N,1]
 *   fp8        float-quantized        P.weight F8_E4M3 [N,K], P.weight_scale [N,1]   (FP8_DYNAMIC)
 *   w4a16      pack-quantized         P.weight_packed I32 [N,K/8], P.weight_scale [N,K/128], P.weight_shape I64 [2]
 *   nvfp4a16   nvfp4-pack-quantized   P.weight_packed U8 [N,K/2], P.weight_scale F8_E4M3 [N,K/16], P.weight_global_scale F32 [1]
 *   nvfp4      nvfp4-pack-quantized   as nvfp4a16, plus P.input_global_scale F32 [1] (needs the activation range)
 *   mxfp4      mxfp4-pack-quantized   P.weight_packed U8 [N,K/2], P.weight_scale U8 (E8M0) [N,K/32]
 *
 * Scales are stored as F32. compressed-tensors stores INT8/FP8/INT4 scales in the model's dtype
 * (BF16 for a BF16 model) and vLLM upcasts them to FP32 on load; keeping F32 keeps the exact
 * scale the codes were computed with, so code × scale decodes to what we measured.
 */
import { SlipstreamError } from '../errors/index.js';
import { dequantizeSync, quantize, type QuantFormat, type QuantOptions } from '../quant/index.js';
import { Tensor, type DType } from '../tensor/index.js';

export const SCHEMES = ['int8', 'fp8', 'fp8-static', 'w4a16', 'nvfp4', 'nvfp4a16', 'mxfp4'] as const;
export type Scheme = (typeof SCHEMES)[number];

interface SchemeSpec {
  format: QuantFormat;
  options: QuantOptions;
  /** CT's compression format string (config.json `format`). */
  ctFormat: string;
  /** Columns per scale group the weight's K must divide (1: any K). */
  kMultiple: number;
  /** Names of the codes and scales tensors. */
  codes: string;
  scales: string;
  global?: string;
  withShape?: boolean;
  needsInputRange?: boolean;
}

const NVFP4_WEIGHTS: SchemeSpec = {
  format: 'NVFP4',
  options: {},
  ctFormat: 'nvfp4-pack-quantized',
  kMultiple: 16,
  codes: 'weight_packed',
  scales: 'weight_scale',
  global: 'weight_global_scale',
};

export const SCHEME_SPECS: Record<Scheme, SchemeSpec> = {
  int8: { format: 'INT8', options: { granularity: 'row', fullIntRange: true }, ctFormat: 'int-quantized', kMultiple: 1, codes: 'weight', scales: 'weight_scale' },
  fp8: { format: 'FP8_E4M3', options: { granularity: 'row' }, ctFormat: 'float-quantized', kMultiple: 1, codes: 'weight', scales: 'weight_scale' },
  // FP8 with a static per-tensor input scale (CT's FP8 preset reads input_scale = amax / 448).
  'fp8-static': {
    format: 'FP8_E4M3',
    options: { granularity: 'row' },
    ctFormat: 'float-quantized',
    kMultiple: 1,
    codes: 'weight',
    scales: 'weight_scale',
    needsInputRange: true,
  },
  w4a16: {
    format: 'INT4',
    options: { groupSize: 128, fullIntRange: true },
    ctFormat: 'pack-quantized',
    kMultiple: 128,
    codes: 'weight_packed',
    scales: 'weight_scale',
    withShape: true,
  },
  nvfp4a16: NVFP4_WEIGHTS,
  nvfp4: { ...NVFP4_WEIGHTS, needsInputRange: true },
  mxfp4: { format: 'MXFP4', options: {}, ctFormat: 'mxfp4-pack-quantized', kMultiple: 32, codes: 'weight_packed', scales: 'weight_scale' },
};

const CODES_DTYPE: Record<Scheme, DType> = { int8: 'I8', fp8: 'F8_E4M3', 'fp8-static': 'F8_E4M3', w4a16: 'I32', nvfp4: 'U8', nvfp4a16: 'U8', mxfp4: 'U8' };
const SCALES_DTYPE: Record<Scheme, DType> = { int8: 'F32', fp8: 'F32', 'fp8-static': 'F32', w4a16: 'F32', nvfp4: 'F8_E4M3', nvfp4a16: 'F8_E4M3', mxfp4: 'U8' };

export interface OutputSpec {
  name: string;
  dtype: DType;
  shape: number[];
}

/** Checks that the weight `name` [N, K] can take the scheme; a sentence naming it if not. */
export function checkWeight(scheme: Scheme, name: string, dtype: DType, shape: readonly number[]): void {
  if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16')
    throw new SlipstreamError('SLIP_E_DTYPE_MISMATCH', `expected an F32, F16 or BF16 weight for ${name}, got ${dtype} (is the file already quantized?)`);
  const k = shape[1];
  const m = SCHEME_SPECS[scheme].kMultiple;
  if (k % m !== 0)
    throw new SlipstreamError(
      'SLIP_E_SHAPE_MISMATCH',
      `expected the input width of ${name} (shape [${shape.join(', ')}]) to be a multiple of ${m} for ${scheme}, got ${k}; leave it out with --ignore`,
    );
  if (scheme !== 'int8' && scheme !== 'fp8' && scheme !== 'fp8-static' && k % 2 !== 0)
    throw new SlipstreamError('SLIP_E_SHAPE_MISMATCH', `expected an even input width for ${name} (two 4-bit codes per byte), got ${k}`);
}

/** Names, dtypes and shapes of what the module `prefix` (weight [N, K]) becomes. */
export function outputSpecs(scheme: Scheme, prefix: string, shape: readonly number[]): OutputSpec[] {
  const s = SCHEME_SPECS[scheme];
  const [n, k] = shape;
  const codesShape: Record<Scheme, number[]> = {
    int8: [n, k],
    fp8: [n, k],
    'fp8-static': [n, k],
    w4a16: [n, Math.ceil((k * 4) / 32)],
    nvfp4: [n, k / 2],
    nvfp4a16: [n, k / 2],
    mxfp4: [n, k / 2],
  };
  const scalesShape: Record<Scheme, number[]> = {
    int8: [n, 1],
    fp8: [n, 1],
    'fp8-static': [n, 1],
    w4a16: [n, k / 128],
    nvfp4: [n, k / 16],
    nvfp4a16: [n, k / 16],
    mxfp4: [n, k / 32],
  };
  const out: OutputSpec[] = [
    { name: `${prefix}.${s.codes}`, dtype: CODES_DTYPE[scheme], shape: codesShape[scheme] },
    { name: `${prefix}.${s.scales}`, dtype: SCALES_DTYPE[scheme], shape: scalesShape[scheme] },
  ];
  if (s.global) out.push({ name: `${prefix}.${s.global}`, dtype: 'F32', shape: [1] });
  if (s.needsInputRange) out.push({ name: `${prefix}.${inputScaleName(scheme)}`, dtype: 'F32', shape: [1] });
  if (s.withShape) out.push({ name: `${prefix}.weight_shape`, dtype: 'I64', shape: [2] });
  return out;
}

export interface ModuleOptions {
  allowNonFinite?: boolean;
  /** nvfp4, fp8-static: the calibrated max |activation| of this module's input. */
  inputAmax?: number;
  /** NVFP4: this global scale instead of 448*6/amax(weight) (shared by fused siblings such as q/k/v). */
  globalScale?: number;
}

/** nvfp4 stores input_global_scale = 448*6/amax (a divisor); fp8-static input_scale = amax/448. */
function inputScaleName(scheme: Scheme): string {
  return scheme === 'fp8-static' ? 'input_scale' : 'input_global_scale';
}

/** Quantizes one weight; returns the tensors of outputSpecs(), in the same order. */
export async function quantizeModule(scheme: Scheme, prefix: string, weight: Tensor, options: ModuleOptions = {}): Promise<Tensor[]> {
  const s = SCHEME_SPECS[scheme];
  const x = weight.dtype === 'F32' ? weight : new Tensor('F32', weight.shape, weight.toFloat32());
  let q;
  try {
    q = await quantize(x, s.format, {
      ...s.options,
      allowNonFinite: options.allowNonFinite ?? false,
      ...(options.globalScale !== undefined ? { globalScale: options.globalScale } : {}),
    });
  } catch (err) {
    if (err instanceof SlipstreamError) throw new SlipstreamError(err.code, `${prefix}.weight: ${err.message}`, { cause: err });
    throw err;
  }
  const out: Tensor[] = [q.codes, q.scales];
  if (s.global) out.push(q.global!);
  if (s.needsInputRange) {
    const amax = options.inputAmax;
    if (amax === undefined || !(amax > 0) || !Number.isFinite(amax))
      throw new SlipstreamError(
        'SLIP_E_INVALID_ARGUMENT',
        `expected a positive finite activation range for ${prefix} (${inputScaleName(scheme)} from amax), got ${String(amax)}`,
      );
    const a = Math.fround(amax);
    out.push(Tensor.fromArray('F32', [1], [Math.fround(scheme === 'fp8-static' ? a / 448 : 2688 / a)]));
  }
  if (s.withShape) out.push(Tensor.fromArray('I64', [2], [BigInt(weight.shape[0]), BigInt(weight.shape[1])]));
  return out;
}

/** compressed-tensors' `format` (config.json quantization_config) -> our scheme of the same weight encoding. */
const SCHEME_OF_CT_FORMAT: Record<string, Scheme> = {
  'int-quantized': 'int8',
  'float-quantized': 'fp8',
  'pack-quantized': 'w4a16',
  'nvfp4-pack-quantized': 'nvfp4a16',
  'mxfp4-pack-quantized': 'mxfp4',
};

/**
 * A compressed-tensors checkpoint's tensors with every quantized module turned back into an F32
 * `<module>.weight` (what quantizeModule wrote, decoded by the same codecs); activation scales are
 * dropped (a runtime that computes in FP32 does not use them) and every other tensor is kept.
 * `where` names the checkpoint in errors.
 */
export function dequantizeCheckpoint(tensors: Map<string, Tensor>, quantizationConfig: unknown, where: string): Map<string, Tensor> {
  const qc = quantizationConfig as { format?: unknown; quant_method?: unknown } | null;
  const format = typeof qc?.format === 'string' ? qc.format : undefined;
  const scheme = format === undefined ? undefined : SCHEME_OF_CT_FORMAT[format];
  if (qc?.quant_method !== 'compressed-tensors' || scheme === undefined)
    throw new SlipstreamError(
      'SLIP_E_UNSUPPORTED',
      `${where}: quantization_config is not a compressed-tensors format this runtime reads (expected quant_method "compressed-tensors" and format one of ${Object.keys(SCHEME_OF_CT_FORMAT).join(', ')}, got ${JSON.stringify(qc?.quant_method)} / ${JSON.stringify(format)})`,
    );
  const s = SCHEME_SPECS[scheme];
  const out = new Map<string, Tensor>();
  const scaleSuffix = `.${s.scales}`;
  const used = new Set<string>();
  for (const [name, scales] of tensors) {
    if (!name.endsWith(scaleSuffix)) continue;
    const prefix = name.slice(0, -scaleSuffix.length);
    const codes = tensors.get(`${prefix}.${s.codes}`);
    if (codes === undefined) throw new SlipstreamError('SLIP_E_SCHEMA', `${where}: ${name} has no ${prefix}.${s.codes}`);
    const global = s.global ? tensors.get(`${prefix}.${s.global}`) : undefined;
    if (s.global && global === undefined) throw new SlipstreamError('SLIP_E_SCHEMA', `${where}: ${prefix} has no ${prefix}.${s.global}`);
    let shape: number[];
    if (s.withShape) {
      const stored = tensors.get(`${prefix}.weight_shape`);
      if (stored === undefined) throw new SlipstreamError('SLIP_E_SCHEMA', `${where}: ${prefix} has no ${prefix}.weight_shape`);
      shape = Array.from(stored.data as BigInt64Array, Number);
      used.add(`${prefix}.weight_shape`);
    } else {
      shape = [codes.shape[0]!, scheme === 'int8' || scheme === 'fp8' ? codes.shape[1]! : codes.shape[1]! * 2];
    }
    try {
      out.set(`${prefix}.weight`, dequantizeSync({ format: s.format, codes, scales, global, options: s.options }, shape));
    } catch (err) {
      if (err instanceof SlipstreamError) throw new SlipstreamError(err.code, `${where}: ${prefix}: ${err.message}`, { cause: err });
      throw err;
    }
    used.add(name).add(`${prefix}.${s.codes}`);
    if (global) used.add(`${prefix}.${s.global}`);
  }
  for (const [name, t] of tensors) {
    if (used.has(name) || /\.(input_scale|input_global_scale)$/.test(name)) continue;
    if (!out.has(name)) out.set(name, t);
  }
  return out;
}

/** A test for module names against compressed-tensors' `ignore` entries: names, or `re:` regexes. */
export function ignoreMatcher(entries: readonly string[]): (module: string) => boolean {
  const tests = entries.map((e) => {
    if (!e.startsWith('re:')) return (m: string) => m === e;
    let re: RegExp;
    try {
      re = new RegExp(e.slice(3));
    } catch (err) {
      throw new SlipstreamError('SLIP_E_USAGE', `expected a valid regular expression in --ignore, got ${JSON.stringify(e)}: ${(err as Error).message}`);
    }
    return (m: string) => re.test(m);
  });
  return (m) => tests.some((t) => t(m));
}
