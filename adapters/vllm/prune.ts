/**
 * Folding pruning masks (slipstream_torch.ddp.save_masks: per layer `self_attn.kv_group_gate` [KV]
 * and `mlp.channel_gate` [I], 0 = pruned) into a physically smaller Qwen3/Llama checkpoint: a kept
 * GQA group keeps its query heads' q_proj rows, its k_proj/v_proj rows and its o_proj input columns
 * (scaled by the gate's value); a kept channel keeps its gate_proj/up_proj rows (up scaled) and its
 * down_proj column. `roundTo` pads each layer's channel count up to a multiple with zero channels,
 * which changes nothing the model computes. Uniform widths give a standard config; per-layer widths
 * give per-layer lists and the architecture of the vLLM plugin (adapters/vllm/python).
 */
import { SlipstreamError } from '../../core/src/errors/index.js';
import { SafetensorsReader } from '../../core/src/safetensors/index.js';
import { Tensor } from '../../core/src/tensor/index.js';

interface LayerPlan {
  groups: number[];      // kept KV groups, ascending
  groupGate: number[];   // their gate values
  channels: number[];    // kept channels (then zero padding, index -1)
  channelGate: number[]; // their gate values (0 for padding)
}

export interface PrunePlan {
  layers: LayerPlan[];
  headsPerGroup: number;
  headDim: number;
  uniform: boolean;
}

function intOf(config: Record<string, unknown>, key: string, where: string): number {
  const v = config[key];
  if (!Number.isInteger(v) || (v as number) < 1) throw new SlipstreamError('SLIP_E_SCHEMA', `${where}: expected a positive integer ${key}, got ${JSON.stringify(v)}`);
  return v as number;
}

export async function loadPrunePlan(file: string, config: Record<string, unknown>, configPath: string, roundTo = 1): Promise<PrunePlan> {
  const layers = intOf(config, 'num_hidden_layers', configPath);
  const heads = intOf(config, 'num_attention_heads', configPath);
  const kv = (config.num_key_value_heads as number | undefined) ?? heads;
  const inter = intOf(config, 'intermediate_size', configPath);
  const headDim = (config.head_dim as number | undefined) ?? intOf(config, 'hidden_size', configPath) / heads;
  if (heads % kv !== 0) throw new SlipstreamError('SLIP_E_SCHEMA', `${configPath}: num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kv}`);
  const reader = await SafetensorsReader.open(file);
  try {
    const names = new Set(reader.infos().map((i) => i.name));
    const read = async (name: string, n: number): Promise<Float32Array | null> => {
      if (!names.has(name)) return null;
      const info = reader.infos().find((i) => i.name === name)!;
      if (info.shape.length !== 1 || info.shape[0] !== n)
        throw new SlipstreamError('SLIP_E_SHAPE_MISMATCH', `${file}: expected ${name} of shape [${n}], got [${info.shape.join(', ')}]`);
      const v = (await reader.tensor(name)).toFloat32();
      for (const x of v) if (!Number.isFinite(x) || x < 0) throw new SlipstreamError('SLIP_E_NON_FINITE', `${file}: ${name} holds ${x}; gates are finite and >= 0`);
      return v;
    };
    const plans: LayerPlan[] = [];
    for (let l = 0; l < layers; l++) {
      const g = (await read(`model.layers.${l}.self_attn.kv_group_gate`, kv)) ?? new Float32Array(kv).fill(1);
      const c = (await read(`model.layers.${l}.mlp.channel_gate`, inter)) ?? new Float32Array(inter).fill(1);
      const groups = [...g.keys()].filter((i) => g[i] !== 0);
      const channels = [...c.keys()].filter((i) => c[i] !== 0);
      if (groups.length === 0) throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `${file}: layer ${l} keeps no attention group (not servable)`);
      if (channels.length === 0) throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `${file}: layer ${l} keeps no MLP channel`);
      const padded = Math.min(inter, Math.ceil(channels.length / roundTo) * roundTo);
      const pad = Array(padded - channels.length).fill(-1);
      plans.push({ groups, groupGate: groups.map((i) => g[i]), channels: [...channels, ...pad], channelGate: [...channels.map((i) => c[i]), ...pad.map(() => 0)] });
    }
    for (const n of names)
      if (!/^model\.layers\.\d+\.(self_attn\.kv_group_gate|mlp\.channel_gate)$/.test(n) || Number(n.split('.')[2]) >= layers)
        throw new SlipstreamError('SLIP_E_SCHEMA', `${file}: unexpected tensor ${n} (expected model.layers.<i>.self_attn.kv_group_gate and model.layers.<i>.mlp.channel_gate for i < ${layers})`);
    const uniform = plans.every((p) => p.groups.length === plans[0].groups.length && p.channels.length === plans[0].channels.length);
    return { layers: plans, headsPerGroup: heads / kv, headDim, uniform };
  } finally {
    await reader.close();
  }
}

/** Which pruned tensor this is: [layer, kind] or null for tensors pruning leaves alone. */
function role(name: string): [number, string] | null {
  const m = /^model\.layers\.(\d+)\.(self_attn\.(?:q_proj|k_proj|v_proj|o_proj)|mlp\.(?:gate_proj|up_proj|down_proj))\.(weight|bias)$/.exec(name);
  return m ? [Number(m[1]), `${m[2]}.${m[3]}`] : null;
}

/** Rows (dim 0) or columns (dim 1) of a pruned tensor, each with the factor it is scaled by. */
function selection(plan: PrunePlan, layer: number, kind: string): { dim: 0 | 1; index: number[]; scale: number[] } | null {
  const p = plan.layers[layer];
  const { headsPerGroup: per, headDim: d } = plan;
  const rowsOf = (groups: number[], width: number) => groups.flatMap((g) => Array.from({ length: width }, (_, j) => g * width + j));
  const repeat = (v: number[], width: number) => v.flatMap((x) => Array(width).fill(x));
  switch (kind) {
    case 'self_attn.q_proj.weight':
    case 'self_attn.q_proj.bias':
      return { dim: 0, index: rowsOf(p.groups, per * d), scale: Array(p.groups.length * per * d).fill(1) };
    case 'self_attn.k_proj.weight':
    case 'self_attn.k_proj.bias':
    case 'self_attn.v_proj.weight':
    case 'self_attn.v_proj.bias':
      return { dim: 0, index: rowsOf(p.groups, d), scale: Array(p.groups.length * d).fill(1) };
    case 'self_attn.o_proj.weight':
      return { dim: 1, index: rowsOf(p.groups, per * d), scale: repeat(p.groupGate, per * d) };
    case 'mlp.gate_proj.weight':
    case 'mlp.gate_proj.bias':
      return { dim: 0, index: p.channels, scale: p.channels.map(() => 1) };
    case 'mlp.up_proj.weight':
    case 'mlp.up_proj.bias':
      return { dim: 0, index: p.channels, scale: p.channelGate };
    case 'mlp.down_proj.weight':
      return { dim: 1, index: p.channels, scale: p.channels.map(() => 1) };
    default:
      return null; // o_proj / down_proj biases act after the pruned axis
  }
}

export function prunedShape(plan: PrunePlan, name: string, shape: readonly number[]): number[] {
  const r = role(name);
  const s = r && selection(plan, r[0], r[1]);
  if (!s) return [...shape];
  const out = [...shape];
  out[s.dim] = s.index.length;
  return out;
}

/** The pruned tensor (same dtype); index -1 is a zero row or column (padding). */
export function pruneTensor(plan: PrunePlan, name: string, t: Tensor): Tensor {
  const r = role(name);
  const s = r && selection(plan, r[0], r[1]);
  if (!s) return t;
  const x = t.toFloat32();
  const rows = t.shape[0];
  const cols = t.shape.length > 1 ? t.shape[1] : 1;
  const out = new Float32Array(s.dim === 0 ? s.index.length * cols : rows * s.index.length);
  if (s.dim === 0)
    s.index.forEach((src, i) => {
      if (src < 0) return;
      for (let c = 0; c < cols; c++) out[i * cols + c] = x[src * cols + c] * s.scale[i];
    });
  else
    for (let row = 0; row < rows; row++)
      s.index.forEach((src, j) => {
        if (src >= 0) out[row * s.index.length + j] = x[row * cols + src] * s.scale[j];
      });
  return Tensor.fromArray(t.dtype, prunedShape(plan, name, t.shape), out);
}

/** config.json after pruning: standard fields when every layer kept the same widths, else per-layer lists. */
export function prunedConfig(plan: PrunePlan, config: Record<string, unknown>): Record<string, unknown> {
  const kv = plan.layers.map((p) => p.groups.length);
  const inter = plan.layers.map((p) => p.channels.length);
  if (plan.uniform)
    return { ...config, num_key_value_heads: kv[0], num_attention_heads: kv[0] * plan.headsPerGroup, intermediate_size: inter[0], head_dim: plan.headDim };
  return {
    ...config,
    architectures: ['Qwen3PrunedForCausalLM'],
    head_dim: plan.headDim,
    layer_num_key_value_heads: kv,
    layer_num_attention_heads: kv.map((k) => k * plan.headsPerGroup),
    layer_intermediate_size: inter,
  };
}
