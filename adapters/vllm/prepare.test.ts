/**
 * `slipstream prepare` on a small Qwen3-shaped Hugging Face folder written here (random weights,
 * the real tensor names): the compressed-tensors tensors and config vLLM reads, NVFP4 global
 * scales shared by fused siblings, untouched embeddings and lm_head, shards and their index,
 * atomic output, and errors that name what is wrong.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { SCHEME_SPECS, readCheckpoint } from '../../core/src/checkpoint/index.js';
import { dequantize, dequantizeSync, quantizeSync } from '../../core/src/quant/index.js';
import { Qwen3Model, qwen3ConfigFromJson } from '../../core/src/runtime/index.js';
import { SafetensorsReader, SafetensorsWriter } from '../../core/src/safetensors/index.js';
import { Tensor } from '../../core/src/tensor/index.js';
import { prepare, siblingGroup } from './prepare.js';

const H = 128, I = 256, V = 96, HD = 32, KV = 2;

function randn(n: number, seed: number, scale: number): Float32Array {
  let s = seed >>> 0;
  const r = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  return Float32Array.from({ length: n }, () => scale * Math.sqrt(-2 * Math.log(r())) * Math.cos(2 * Math.PI * r()));
}

async function tinyQwen3(layers = 2): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'slip-qwen3-'));
  const t: [string, number[], number][] = [['model.embed_tokens.weight', [V, H], 1], ['model.norm.weight', [H], 1], ['lm_head.weight', [V, H], 0.05]];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}`;
    t.push([`${p}.input_layernorm.weight`, [H], 1], [`${p}.post_attention_layernorm.weight`, [H], 1]);
    t.push([`${p}.self_attn.q_proj.weight`, [4 * HD, H], 0.2], [`${p}.self_attn.k_proj.weight`, [KV * HD, H], 0.1], [`${p}.self_attn.v_proj.weight`, [KV * HD, H], 0.05]);
    t.push([`${p}.self_attn.o_proj.weight`, [H, 4 * HD], 0.05], [`${p}.self_attn.q_norm.weight`, [HD], 1], [`${p}.self_attn.k_norm.weight`, [HD], 1]);
    t.push([`${p}.mlp.gate_proj.weight`, [I, H], 0.05], [`${p}.mlp.up_proj.weight`, [I, H], 0.1], [`${p}.mlp.down_proj.weight`, [H, I], 0.05]);
  }
  const w = await SafetensorsWriter.create(path.join(dir, 'model.safetensors'), t.map(([name, shape]) => ({ name, dtype: 'BF16' as const, shape })));
  for (const [i, [name, shape, scale]] of t.entries())
    await w.writeTensor(name, Tensor.fromArray('BF16', shape, randn(shape.reduce((a, b) => a * b, 1), i + 1, scale)));
  await w.finish();
  await writeFile(path.join(dir, 'config.json'), JSON.stringify({ architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', hidden_size: H, intermediate_size: I, num_attention_heads: 4, num_key_value_heads: KV, head_dim: HD, num_hidden_layers: layers, vocab_size: V }));
  await writeFile(path.join(dir, 'tokenizer.json'), '{"version": "1.0"}');
  return dir;
}

async function load(dir: string): Promise<Map<string, Tensor>> {
  const index = JSON.parse(await readFile(path.join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
  const out = new Map<string, Tensor>();
  for (const file of new Set(Object.values(index.weight_map))) {
    const r = await SafetensorsReader.open(path.join(dir, file));
    for (const info of r.infos()) {
      expect(index.weight_map[info.name]).toBe(file);
      out.set(info.name, await r.tensor(info.name));
    }
    await r.close();
  }
  expect([...out.keys()].sort()).toEqual(Object.keys(index.weight_map).sort());
  return out;
}

describe('prepare', () => {
  it('nvfp4a16: CT tensors and config, shared global scales, untouched embeddings, within NVFP4\'s bound', async () => {
    const src = await tinyQwen3();
    const out = path.join(await mkdtemp(path.join(tmpdir(), 'slip-prep-')), 'q');
    const report = await prepare(src, { scheme: 'nvfp4a16', out, maxShardBytes: 96 * 1024 });
    expect(report.quantized).toBe(14);
    expect(report.shards.length).toBeGreaterThan(1);
    const config = JSON.parse(await readFile(path.join(out, 'config.json'), 'utf8'));
    expect(config.model_type).toBe('qwen3');
    expect(config.quantization_config).toMatchObject({
      quant_method: 'compressed-tensors', format: 'nvfp4-pack-quantized', quantization_status: 'compressed', ignore: ['lm_head', 're:.*embed_tokens$'],
      config_groups: { group_0: { targets: ['Linear'], input_activations: null, weights: { num_bits: 4, type: 'float', strategy: 'tensor_group', group_size: 16, scale_dtype: 'torch.float8_e4m3fn' } } },
    });
    expect(await readFile(path.join(out, 'tokenizer.json'), 'utf8')).toBe('{"version": "1.0"}');
    const t = await load(out);
    const before = new Map<string, Tensor>();
    const r = await SafetensorsReader.open(path.join(src, 'model.safetensors'));
    for (const info of r.infos()) before.set(info.name, await r.tensor(info.name));
    await r.close();
    for (const name of ['lm_head.weight', 'model.embed_tokens.weight', 'model.norm.weight', 'model.layers.1.self_attn.q_norm.weight'])
      expect(Buffer.from(t.get(name)!.bytes())).toEqual(Buffer.from(before.get(name)!.bytes()));
    const g = (m: string) => t.get(`model.layers.0.${m}.weight_global_scale`)!.toFloat32()[0];
    expect(g('self_attn.q_proj')).toBe(g('self_attn.k_proj'));
    expect(g('self_attn.k_proj')).toBe(g('self_attn.v_proj'));
    expect(g('mlp.gate_proj')).toBe(g('mlp.up_proj'));
    expect(g('self_attn.o_proj')).not.toBe(g('self_attn.q_proj'));
    let qkvAmax = 0;
    for (const m of ['q_proj', 'k_proj', 'v_proj']) for (const x of before.get(`model.layers.0.self_attn.${m}.weight`)!.toFloat32()) qkvAmax = Math.max(qkvAmax, Math.abs(x));
    expect(g('self_attn.q_proj')).toBe(Math.fround(2688 / qkvAmax));
    // Every element within the NVFP4 bound of its 16-block: half the widest E2M1 gap (1 of the
    // block's scale amax/6), the E4M3 scale rounding (1/16) on top: |w - w'| <= amax_block * 17/96.
    for (const m of ['self_attn.v_proj', 'mlp.down_proj']) {
      const p = `model.layers.1.${m}`;
      const w = before.get(`${p}.weight`)!.toFloat32();
      const shape = before.get(`${p}.weight`)!.shape;
      const d = (await dequantize({ format: 'NVFP4', codes: t.get(`${p}.weight_packed`)!, scales: t.get(`${p}.weight_scale`)!, global: t.get(`${p}.weight_global_scale`)!, options: {} }, shape)).toFloat32();
      for (let b = 0; b < w.length; b += 16) {
        let amax = 0;
        for (let i = b; i < b + 16; i++) amax = Math.max(amax, Math.abs(w[i]));
        for (let i = b; i < b + 16; i++) expect(Math.abs(w[i] - d[i])).toBeLessThanOrEqual((amax * 17) / 96 + 1e-7);
      }
    }
    expect(report.bytesIn / report.bytesOut).toBeGreaterThan(1.5);
  });

  it('w8a8-int8: the int-quantized config; a dry run writes nothing; errors name what is wrong', async () => {
    const src = await tinyQwen3(1);
    const base = await mkdtemp(path.join(tmpdir(), 'slip-prep-'));
    const plan = await prepare(src, { scheme: 'w8a8-int8', out: path.join(base, 'dry'), dryRun: true });
    expect(plan.quantized).toBe(7);
    expect(await readdir(base)).toEqual([]);
    const out = path.join(base, 'int8');
    await prepare(src, { scheme: 'w8a8-int8', out });
    const q = JSON.parse(await readFile(path.join(out, 'config.json'), 'utf8')).quantization_config;
    expect(q.format).toBe('int-quantized');
    expect(q.config_groups.group_0.input_activations).toMatchObject({ num_bits: 8, type: 'int', strategy: 'token', dynamic: true });
    expect((await load(out)).get('model.layers.0.mlp.up_proj.weight')!.dtype).toBe('I8');
    await expect(prepare(src, { scheme: 'w8a8-int8', out })).rejects.toThrow(/exists: prepare writes a new folder/);
    await expect(prepare(out, { scheme: 'nvfp4a16', out: path.join(base, 'again') })).rejects.toThrow(/already quantized/);
    await expect(prepare(src, { scheme: 'nvfp4', out: path.join(base, 'w4a4') })).rejects.toThrow(/nvfp4 stores a static input scale for model.layers.0.self_attn.q_proj/);
    expect((await readdir(base)).sort()).toEqual(['int8']); // no temporary folders left behind
    const empty = await mkdtemp(path.join(tmpdir(), 'slip-prep-'));
    await expect(prepare(empty, { scheme: 'w4a16', out: path.join(base, 'x') })).rejects.toThrow(/cannot read .*config\.json/);
    await writeFile(path.join(empty, 'config.json'), '{"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"]}');
    await expect(prepare(empty, { scheme: 'w4a16', out: path.join(base, 'x') })).rejects.toThrow(/expected model.safetensors or model.safetensors.index.json/);
  });

  it('bad checkpoints: a missing shard, an index that disagrees, an unknown architecture', async () => {
    const src = await tinyQwen3(1);
    const base = await mkdtemp(path.join(tmpdir(), 'slip-prep-'));
    const sharded = path.join(base, 'sharded');
    await prepare(src, { scheme: 'none', out: sharded, maxShardBytes: 4096 });
    const indexFile = path.join(sharded, 'model.safetensors.index.json');
    const index = JSON.parse(await readFile(indexFile, 'utf8')) as { weight_map: Record<string, string> };
    const files = [...new Set(Object.values(index.weight_map))].sort();
    expect(files.length).toBeGreaterThan(2);
    const attempt = () => prepare(sharded, { scheme: 'w4a16', out: path.join(base, 'out') });
    const edit = async (map: Record<string, string>) => writeFile(indexFile, JSON.stringify({ weight_map: map }));
    const [moved, other] = [Object.keys(index.weight_map)[0]!, files.find((f) => f !== index.weight_map[Object.keys(index.weight_map)[0]!])!];
    await edit({ ...index.weight_map, [moved]: other });
    // (its own shard, holding only it, is then named by nothing: a stray file)
    await expect(attempt()).rejects.toThrow(new RegExp(`index\\.json: (lists ${moved.replaceAll('.', '\\.')} in ${other}, but \\S+ holds it|does not name \\S+, which is in)`));
    const { [moved]: _, ...without } = index.weight_map;
    await edit(without);
    await expect(attempt()).rejects.toThrow(new RegExp(`(does not list ${moved.replaceAll('.', '\\.')}, which \\S+ holds|does not name \\S+, which is in)`));
    await edit({ ...index.weight_map, 'model.layers.9.mlp.up_proj.weight': files[0]! });
    await expect(attempt()).rejects.toThrow(/lists model\.layers\.9\.mlp\.up_proj\.weight in \S+, which does not hold it/);
    await edit(index.weight_map);
    await rm(path.join(sharded, files[1]!));
    await expect(attempt()).rejects.toThrow(new RegExp(`names the shard ${files[1]!.replaceAll('.', '\\.')}, which is missing`));
    const config = JSON.parse(await readFile(path.join(src, 'config.json'), 'utf8'));
    await writeFile(path.join(src, 'config.json'), JSON.stringify({ ...config, architectures: ['WanModel'] }));
    await expect(prepare(src, { scheme: 'w4a16', out: path.join(base, 'out') })).rejects.toThrow(/architecture "WanModel" is not one prepare knows \(expected one of Qwen3ForCausalLM/);
    expect((await readdir(base)).sort()).toEqual(['sharded']);
  });

  it('a stopped prepare leaves no output folder, and a killed one\'s leftovers go at the next run', async () => {
    const src = await tinyQwen3(1);
    const base = await mkdtemp(path.join(tmpdir(), 'slip-prep-'));
    const out = path.join(base, 'out');
    const stop = new AbortController();
    stop.abort('SIGTERM');
    await expect(prepare(src, { scheme: 'w4a16', out, signal: stop.signal })).rejects.toThrow(/prepare stopped: SIGTERM; .*out was not written/);
    expect(await readdir(base)).toEqual([]);
    // SIGKILL cannot be caught: what a killed run (a pid no longer alive) left beside the target goes.
    const dead = 2 ** 22 + 12345; // above Linux's default pid_max
    await mkdir(`${out}.tmp-${dead}`);
    await writeFile(path.join(`${out}.tmp-${dead}`, 'model-00001-of-00001.safetensors'), 'partial');
    await prepare(src, { scheme: 'w4a16', out });
    expect((await readdir(base)).sort()).toEqual(['out']);
  });

  it('its outputs of qwen3-mini run on the native runtime: the weights the codecs give back, nothing else changed', async () => {
    const mini = fileURLToPath(new URL('../../models/qwen3-mini', import.meta.url));
    const base = await mkdtemp(path.join(tmpdir(), 'slip-prep-'));
    const original = await readCheckpoint(mini);
    const json = JSON.parse(await readFile(path.join(mini, 'config.json'), 'utf8'));
    const { eosTokenIds, ...config } = qwen3ConfigFromJson(json);
    const prompt = [5, 900, 31, 7, 1200, 64];
    for (const [prepScheme, ctScheme] of [['w8a8-int8', 'int8'], ['w4a16', 'w4a16']] as const) {
      const out = path.join(base, prepScheme);
      await prepare(mini, { scheme: prepScheme, out });
      const served = await Qwen3Model.load(out);
      // The reference: the original weights with each linear through the same codec and back.
      const expected = new Map(original);
      for (const [name, w] of original) {
        const module = name.slice(0, -'.weight'.length);
        if (!/\.(q|k|v|o|gate|up|down)_proj\.weight$/.test(name)) continue;
        const spec = SCHEME_SPECS[ctScheme];
        const q = quantizeSync(new Tensor('F32', w.shape, w.toFloat32()), spec.format, spec.options);
        expected.set(`${module}.weight`, dequantizeSync(q, w.shape));
      }
      const reference = await Qwen3Model.fromTensors(expected, config, eosTokenIds);
      const a = served.createSession(), b = reference.createSession();
      expect(Array.from(await a.forward(prompt))).toEqual(Array.from(await b.forward(prompt)));
      a.free(); b.free(); served.free(); reference.free();
    }
    await rm(base, { recursive: true, force: true });
  });

  it('groups fused siblings', () => {
    expect(siblingGroup('model.layers.3.self_attn.k_proj')).toBe('model.layers.3.self_attn.qkv');
    expect(siblingGroup('model.layers.3.mlp.up_proj')).toBe('model.layers.3.mlp.gate_up');
    expect(siblingGroup('model.layers.3.mlp.down_proj')).toBe('model.layers.3.mlp.down_proj');
  });
});
