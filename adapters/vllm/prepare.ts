/**
 * `slipstream prepare`: a Hugging Face model folder into one that stock vLLM serves, quantized with
 * the compressed-tensors layout and `quantization_config` vLLM reads (../../../shared/research/
 * vllm.md §1). Tensors stream one at a time (peak memory follows the largest tensor), the
 * linears of the decoder layers are quantized by the native codecs, embeddings and lm_head are left
 * alone unless asked, and NVFP4's global scale is shared by fused siblings (q/k/v, gate/up: vLLM
 * keeps one per fused layer). The output is written beside its target and renamed into place.
 */
import { copyFile, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

import { checkWeight, ignoreMatcher, outputSpecs, quantizeModule, type OutputSpec, type Scheme } from '../../core/src/checkpoint/index.js';
import { SlipstreamError } from '../../core/src/errors/index.js';
import { createProgress } from '../../core/src/progress/index.js';
import { SafetensorsReader, SafetensorsWriter } from '../../core/src/safetensors/index.js';
import { packageRoot } from '../../core/src/native/loader.js';
import { readJsonFile } from '../../core/src/schema/index.js';
import { dtypeInfo, numelOf, type DType } from '../../core/src/tensor/index.js';
import { loadPrunePlan, prunedConfig, prunedShape, pruneTensor } from './prune.js';

/** The schemes `prepare` offers, by the names vLLM users know, and the codec each uses (none: prune only). */
export const PREPARE_SCHEMES = {
  none: null,
  'w8a8-int8': 'int8',
  fp8: 'fp8-static',
  'fp8-dynamic': 'fp8',
  w4a16: 'w4a16',
  nvfp4: 'nvfp4',
  nvfp4a16: 'nvfp4a16',
} as const satisfies Record<string, Scheme | null>;
export type PrepareScheme = keyof typeof PREPARE_SCHEMES;

export interface PrepareOptions {
  scheme: PrepareScheme;
  out: string;
  /** Module names or `re:` regexes left unquantized; default lm_head and the embeddings. */
  ignore?: string[];
  inputAmax?: Record<string, number>;
  dryRun?: boolean;
  maxShardBytes?: number;
  progress?: NodeJS.WritableStream;
  /** Pruning masks (slipstream_torch.ddp.save_masks) folded in before quantizing. */
  prune?: string;
  /** Pad each layer's MLP width up to a multiple of this with zero channels. */
  roundTo?: number;
  /** Stops between tensors; the output folder is then never created (the temporary one is removed). */
  signal?: AbortSignal;
}

const PRUNED_MODELING = path.join(packageRoot(), 'adapters', 'vllm', 'transformers', 'modeling_qwen3_pruned.py');

/** The architectures prepare's tensor names and fused siblings are written for (decoder LLMs vLLM serves). */
export const PREPARE_ARCHITECTURES = ['Qwen3ForCausalLM', 'Qwen2ForCausalLM', 'LlamaForCausalLM', 'MistralForCausalLM'];

const args = (o: Record<string, unknown>) => ({ symmetric: true, group_size: null, block_structure: null, dynamic: false, actorder: null, observer: 'minmax', observer_kwargs: {}, ...o });
const NVFP4_ARGS = { num_bits: 4, type: 'float', strategy: 'tensor_group', group_size: 16, scale_dtype: 'torch.float8_e4m3fn' };

/** compressed-tensors' scheme (weights, input_activations, format) for each prepare scheme. */
const CT_SCHEMES: Record<Exclude<PrepareScheme, 'none'>, { weights: object; input_activations: object | null; format: string }> = {
  'w8a8-int8': {
    weights: args({ num_bits: 8, type: 'int', strategy: 'channel' }),
    input_activations: args({ num_bits: 8, type: 'int', strategy: 'token', dynamic: true, observer: null }),
    format: 'int-quantized',
  },
  fp8: {
    weights: args({ num_bits: 8, type: 'float', strategy: 'channel' }),
    input_activations: args({ num_bits: 8, type: 'float', strategy: 'tensor', observer: 'static_minmax' }),
    format: 'float-quantized',
  },
  'fp8-dynamic': {
    weights: args({ num_bits: 8, type: 'float', strategy: 'channel' }),
    input_activations: args({ num_bits: 8, type: 'float', strategy: 'token', dynamic: true, observer: null }),
    format: 'float-quantized',
  },
  w4a16: { weights: args({ num_bits: 4, type: 'int', strategy: 'group', group_size: 128 }), input_activations: null, format: 'pack-quantized' },
  nvfp4a16: { weights: args(NVFP4_ARGS), input_activations: null, format: 'nvfp4-pack-quantized' },
  nvfp4: {
    weights: args(NVFP4_ARGS),
    input_activations: args({ ...NVFP4_ARGS, dynamic: 'local', observer: 'static_minmax' }),
    format: 'nvfp4-pack-quantized',
  },
};

export function quantizationConfig(scheme: Exclude<PrepareScheme, 'none'>, ignore: string[]): Record<string, unknown> {
  const s = CT_SCHEMES[scheme];
  return {
    config_groups: { group_0: { targets: ['Linear'], weights: s.weights, input_activations: s.input_activations, output_activations: null, format: s.format } },
    format: s.format,
    ignore,
    kv_cache_scheme: null,
    quant_method: 'compressed-tensors',
    quantization_status: 'compressed',
    sparsity_config: {},
    transform_config: {},
    version: '0.12.0',
  };
}

/** Fused siblings share one NVFP4 global scale: the group a linear belongs to, or itself. */
export function siblingGroup(module: string): string {
  const m = /^(.*\.)(q_proj|k_proj|v_proj|gate_proj|up_proj)$/.exec(module);
  if (!m) return module;
  return m[1] + (m[2] === 'gate_proj' || m[2] === 'up_proj' ? 'gate_up' : 'qkv');
}

/** The model's safetensors files: the index's shards, or model.safetensors. */
/** The shards of a model folder and, when it has an index, its weight_map (tensor -> shard file). */
async function shardsOf(dir: string): Promise<{ shards: string[]; index?: { file: string; map: Record<string, string> } }> {
  const indexFile = path.join(dir, 'model.safetensors.index.json');
  try {
    await stat(indexFile);
  } catch {
    const single = path.join(dir, 'model.safetensors');
    try {
      await stat(single);
    } catch {
      throw new SlipstreamError('SLIP_E_IO', `${dir}: expected model.safetensors or model.safetensors.index.json (a Hugging Face model folder)`);
    }
    return { shards: [single] };
  }
  const index = (await readJsonFile(indexFile)) as { weight_map?: Record<string, string> };
  if (typeof index !== 'object' || index === null || typeof index.weight_map !== 'object' || index.weight_map === null)
    throw new SlipstreamError('SLIP_E_SCHEMA', `${indexFile}: expected a weight_map object`);
  const files = [...new Set(Object.values(index.weight_map))].sort();
  for (const f of files) {
    try {
      await stat(path.join(dir, f));
    } catch {
      throw new SlipstreamError('SLIP_E_IO', `${indexFile}: names the shard ${f}, which is missing from ${dir}`);
    }
  }
  // A shard on disk that the index does not name would be silently left out of the output.
  const stray = (await readdir(dir)).filter((f) => f.endsWith('.safetensors') && !files.includes(f));
  if (stray.length) throw new SlipstreamError('SLIP_E_SCHEMA', `${indexFile}: does not name ${stray.join(', ')}, which ${stray.length > 1 ? 'are' : 'is'} in ${dir}`);
  return { shards: files.map((f) => path.join(dir, f)), index: { file: indexFile, map: index.weight_map } };
}

/** Every tensor the index lists is in the shard it names, and every shard tensor is listed. */
function checkIndex(index: { file: string; map: Record<string, string> }, found: Map<string, string>): void {
  for (const [name, shard] of found) {
    const listed = index.map[name];
    if (listed === undefined) throw new SlipstreamError('SLIP_E_SCHEMA', `${index.file}: does not list ${name}, which ${path.basename(shard)} holds`);
    if (listed !== path.basename(shard))
      throw new SlipstreamError('SLIP_E_SCHEMA', `${index.file}: lists ${name} in ${listed}, but ${path.basename(shard)} holds it`);
  }
  for (const [name, file] of Object.entries(index.map))
    if (!found.has(name)) throw new SlipstreamError('SLIP_E_SCHEMA', `${index.file}: lists ${name} in ${file}, which does not hold it`);
}

/** Temporary folders of earlier runs for this target whose process is gone (killed outright). */
async function removeStaleTemps(target: string): Promise<void> {
  const dir = path.dirname(target);
  const prefix = `${path.basename(target)}.tmp-`;
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return;
  }
  for (const e of entries) {
    const pid = Number(e.slice(prefix.length));
    if (!e.startsWith(prefix) || !Number.isInteger(pid) || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') await rm(path.join(dir, e), { recursive: true, force: true });
    }
  }
}

interface Planned {
  shard: string;
  source: string;
  sourceShape: readonly number[];
  module?: string;
  outputs: OutputSpec[];
  bytesIn: number;
}

export interface PrepareReport {
  quantized: number;
  copied: number;
  bytesIn: number;
  bytesOut: number;
  shards: string[];
}

const bytesOf = (o: { dtype: DType; shape: readonly number[] }) => numelOf(o.shape) * dtypeInfo(o.dtype).size;

export async function prepare(modelDir: string, o: PrepareOptions): Promise<PrepareReport> {
  const scheme = PREPARE_SCHEMES[o.scheme];
  const configPath = path.join(modelDir, 'config.json');
  const config = (await readJsonFile(configPath)) as Record<string, unknown>;
  if (typeof config !== 'object' || config === null || Array.isArray(config))
    throw new SlipstreamError('SLIP_E_SCHEMA', `${configPath}: expected a JSON object`);
  if (config.quantization_config !== undefined)
    throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `${modelDir} is already quantized (config.json has a quantization_config)`);
  const arch = Array.isArray(config.architectures) ? config.architectures[0] : undefined;
  if (typeof arch !== 'string' || !PREPARE_ARCHITECTURES.includes(arch))
    throw new SlipstreamError(
      'SLIP_E_UNSUPPORTED',
      `${configPath}: architecture ${JSON.stringify(arch ?? null)} is not one prepare knows (expected one of ${PREPARE_ARCHITECTURES.join(', ')})`,
    );
  const pruning = o.prune ? await loadPrunePlan(o.prune, config, configPath, o.roundTo ?? 1) : null;
  const shapeOf = (name: string, shape: readonly number[]) => (pruning ? prunedShape(pruning, name, shape) : [...shape]);
  const ignoreList = o.ignore ?? ['lm_head', 're:.*embed_tokens$'];
  const ignored = ignoreMatcher(ignoreList);
  const readers = new Map<string, SafetensorsReader>();
  try {
    const plan: Planned[] = [];
    const { shards, index } = await shardsOf(modelDir);
    const found = new Map<string, string>();
    for (const shard of shards) {
      const reader = await SafetensorsReader.open(shard);
      readers.set(shard, reader);
      for (const info of reader.infos()) {
        const twice = found.get(info.name);
        if (twice !== undefined) throw new SlipstreamError('SLIP_E_SCHEMA', `${modelDir}: ${info.name} is in both ${path.basename(twice)} and ${path.basename(shard)}`);
        found.set(info.name, shard);
        const module = info.name.endsWith('.weight') ? info.name.slice(0, -'.weight'.length) : undefined;
        const bytesIn = bytesOf(info);
        const shape = shapeOf(info.name, info.shape);
        if (scheme !== null && module !== undefined && shape.length === 2 && !ignored(module)) {
          checkWeight(scheme, info.name, info.dtype, shape);
          if ((scheme === 'nvfp4' || scheme === 'fp8-static') && o.inputAmax?.[module] === undefined)
            throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `${o.scheme} stores a static input scale for ${module}: pass --input-amax with an entry for it`);
          plan.push({ shard, source: info.name, sourceShape: info.shape, module, outputs: outputSpecs(scheme, module, shape), bytesIn });
        } else plan.push({ shard, source: info.name, sourceShape: info.shape, outputs: [{ name: info.name, dtype: info.dtype, shape }], bytesIn });
      }
    }
    if (index) checkIndex(index, found);
    // Output shards of at most maxShardBytes, in the input's order.
    const maxShard = o.maxShardBytes ?? 4 * 2 ** 30;
    const shardOf: number[] = [];
    let used = 0;
    let count = 0;
    for (const p of plan) {
      const b = p.outputs.reduce((a, x) => a + bytesOf(x), 0);
      if (count === 0 || (used > 0 && used + b > maxShard)) {
        count++;
        used = 0;
      }
      used += b;
      shardOf.push(count - 1);
    }
    const names = Array.from({ length: count }, (_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.safetensors`);
    const report: PrepareReport = {
      quantized: plan.filter((p) => p.module).length,
      copied: plan.filter((p) => !p.module).length,
      bytesIn: plan.reduce((a, p) => a + p.bytesIn, 0),
      bytesOut: plan.reduce((a, p) => a + p.outputs.reduce((x, y) => x + bytesOf(y), 0), 0),
      shards: names,
    };
    if (o.dryRun) return report;

    const tensorOf = async (p: Planned) => {
      const t = await readers.get(p.shard)!.tensor(p.source);
      return pruning ? pruneTensor(pruning, p.source, t) : t;
    };
    // NVFP4: one global scale per group of fused siblings, from the group's max |w| (a first pass).
    const globals = new Map<string, number>();
    if (scheme === 'nvfp4' || scheme === 'nvfp4a16') {
      const amax = new Map<string, number>();
      // Only fused siblings need it: a lone linear's own amax is what the codec uses by default.
      for (const p of plan.filter((x) => x.module && siblingGroup(x.module) !== x.module)) {
        const w = (await tensorOf(p)).toFloat32();
        let m = 0;
        for (let i = 0; i < w.length; i++) {
          const a = Math.abs(w[i]);
          if (a > m) m = a;
        }
        const g = siblingGroup(p.module!);
        amax.set(g, Math.max(amax.get(g) ?? 0, m));
      }
      for (const [g, m] of amax) if (m > 0) globals.set(g, Math.fround((448 * 6) / m));
    }

    const target = path.resolve(o.out);
    try {
      await stat(target);
      throw new SlipstreamError('SLIP_E_IO', `${target} exists: prepare writes a new folder`);
    } catch (e) {
      if (e instanceof SlipstreamError) throw e;
    }
    const temp = `${target}.tmp-${process.pid}`;
    await removeStaleTemps(target);
    await rm(temp, { recursive: true, force: true });
    await mkdir(temp, { recursive: true });
    const progress = createProgress({ total: plan.length, label: `prepare ${o.scheme}`, stream: o.progress, enabled: o.progress !== undefined });
    try {
      const weightMap: Record<string, string> = {};
      for (let s = 0; s < count; s++) {
        const items = plan.filter((_, i) => shardOf[i] === s);
        const writer = await SafetensorsWriter.create(path.join(temp, names[s]), items.flatMap((p) => p.outputs), { metadata: { format: 'pt' } });
        try {
          for (const p of items) {
            if (o.signal?.aborted) throw new SlipstreamError('SLIP_E_ABORTED', `prepare stopped: ${String(o.signal.reason ?? 'aborted')}; ${target} was not written`);
            const reader = readers.get(p.shard)!;
            const reshaped = p.outputs[0].shape.some((d, i) => d !== p.sourceShape[i]);
            if (!p.module && !(pruning && (reshaped || /\.(o_proj|up_proj)\.weight$|\.up_proj\.bias$/.test(p.source)))) {
              for await (const chunk of reader.chunks(p.source)) await writer.write(p.source, chunk);
            } else if (!p.module) {
              await writer.writeTensor(p.source, await tensorOf(p));
            } else {
              const tensors = await quantizeModule(scheme!, p.module, await tensorOf(p), {
                inputAmax: o.inputAmax?.[p.module],
                globalScale: globals.get(siblingGroup(p.module)),
              });
              for (let i = 0; i < tensors.length; i++) await writer.writeTensor(p.outputs[i].name, tensors[i]);
            }
            for (const out of p.outputs) weightMap[out.name] = names[s];
            progress.tick();
          }
          await writer.finish();
        } catch (err) {
          await writer.abort();
          throw err;
        }
      }
      await writeFile(path.join(temp, 'model.safetensors.index.json'), `${JSON.stringify({ metadata: { total_size: report.bytesOut }, weight_map: weightMap }, null, 2)}\n`);
      const outConfig = pruning ? prunedConfig(pruning, config) : config;
      if (pruning && !pruning.uniform) {
        // transformers loads per-layer widths through this file (trust_remote_code); vLLM through adapters/vllm/python.
        await copyFile(PRUNED_MODELING, path.join(temp, path.basename(PRUNED_MODELING)));
        outConfig.auto_map = { AutoModelForCausalLM: 'modeling_qwen3_pruned.Qwen3PrunedForCausalLM' };
      }
      if (o.scheme !== 'none') outConfig.quantization_config = quantizationConfig(o.scheme, ignoreList);
      await writeFile(path.join(temp, 'config.json'), `${JSON.stringify(outConfig, null, 2)}\n`);
      // Tokenizer, generation config, chat template, model card: everything but the weights.
      for (const f of await readdir(modelDir)) {
        if (f.endsWith('.safetensors') || f === 'model.safetensors.index.json' || f === 'config.json') continue;
        if ((await stat(path.join(modelDir, f))).isFile()) await copyFile(path.join(modelDir, f), path.join(temp, f));
      }
      await rename(temp, target);
    } catch (err) {
      await rm(temp, { recursive: true, force: true });
      throw err;
    } finally {
      progress.finish();
    }
    return report;
  } finally {
    for (const r of readers.values()) await r.close();
  }
}
