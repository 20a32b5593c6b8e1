/**
 * The ready ComfyUI workflows in workflows/comfyui/ (written by `npm run schemas`, a test keeps
 * them in step): ComfyUI's standard text-to-video and text-to-image graphs for Wan2.1 T2V 1.3B
 * and 14B and Flux.1-dev, in API and UI format, accelerated by `accelerate` with our defaults. The
 * model file names are those of ComfyUI's example workflows; put the files in ComfyUI/models.
 */
import { accelerateApi, accelerateUi, type ApiWorkflow, type UiWorkflow } from './workflow.js';

interface CoreNode {
  /** Link inputs (name, type), in the order ComfyUI's node definition lists them. */
  links: [string, string][];
  /** Widget inputs in widget order; a seed widget is followed by ComfyUI's control_after_generate value. */
  widgets: string[];
  outputs: [string, string][];
}

// The few core nodes these graphs use, as ComfyUI 0.29's node definitions order their inputs.
const CORE: Record<string, CoreNode> = {
  UNETLoader: { links: [], widgets: ['unet_name', 'weight_dtype'], outputs: [['MODEL', 'MODEL']] },
  CLIPLoader: { links: [], widgets: ['clip_name', 'type', 'device'], outputs: [['CLIP', 'CLIP']] },
  DualCLIPLoader: { links: [], widgets: ['clip_name1', 'clip_name2', 'type', 'device'], outputs: [['CLIP', 'CLIP']] },
  VAELoader: { links: [], widgets: ['vae_name'], outputs: [['VAE', 'VAE']] },
  CLIPTextEncode: { links: [['clip', 'CLIP']], widgets: ['text'], outputs: [['CONDITIONING', 'CONDITIONING']] },
  FluxGuidance: { links: [['conditioning', 'CONDITIONING']], widgets: ['guidance'], outputs: [['CONDITIONING', 'CONDITIONING']] },
  ModelSamplingSD3: { links: [['model', 'MODEL']], widgets: ['shift'], outputs: [['MODEL', 'MODEL']] },
  EmptyHunyuanLatentVideo: { links: [], widgets: ['width', 'height', 'length', 'batch_size'], outputs: [['LATENT', 'LATENT']] },
  EmptySD3LatentImage: { links: [], widgets: ['width', 'height', 'batch_size'], outputs: [['LATENT', 'LATENT']] },
  KSampler: {
    links: [['model', 'MODEL'], ['positive', 'CONDITIONING'], ['negative', 'CONDITIONING'], ['latent_image', 'LATENT']],
    widgets: ['seed', 'steps', 'cfg', 'sampler_name', 'scheduler', 'denoise'],
    outputs: [['LATENT', 'LATENT']],
  },
  VAEDecode: { links: [['samples', 'LATENT'], ['vae', 'VAE']], widgets: [], outputs: [['IMAGE', 'IMAGE']] },
  SaveAnimatedWEBP: { links: [['images', 'IMAGE']], widgets: ['filename_prefix', 'fps', 'lossless', 'quality', 'method'], outputs: [] },
  SaveImage: { links: [['images', 'IMAGE']], widgets: ['filename_prefix'], outputs: [] },
};

const NEGATIVE_WAN =
  'bright colors, overexposed, static, blurred details, subtitles, style, artwork, painting, picture, still, overall gray, worst quality, low quality';

function wan(unet: string, size: [number, number]): ApiWorkflow {
  return {
    '37': { class_type: 'UNETLoader', inputs: { unet_name: unet, weight_dtype: 'default' } },
    '38': { class_type: 'CLIPLoader', inputs: { clip_name: 'umt5_xxl_fp8_e4m3fn_scaled.safetensors', type: 'wan', device: 'default' } },
    '39': { class_type: 'VAELoader', inputs: { vae_name: 'wan_2.1_vae.safetensors' } },
    '6': { class_type: 'CLIPTextEncode', inputs: { clip: ['38', 0], text: 'a red fox running through fresh snow in a pine forest, morning light' } },
    '7': { class_type: 'CLIPTextEncode', inputs: { clip: ['38', 0], text: NEGATIVE_WAN } },
    '40': { class_type: 'EmptyHunyuanLatentVideo', inputs: { width: size[0], height: size[1], length: 81, batch_size: 1 } },
    '48': { class_type: 'ModelSamplingSD3', inputs: { model: ['37', 0], shift: 8 } },
    '3': {
      class_type: 'KSampler',
      inputs: { model: ['48', 0], positive: ['6', 0], negative: ['7', 0], latent_image: ['40', 0], seed: 42, steps: 30, cfg: 6, sampler_name: 'uni_pc', scheduler: 'simple', denoise: 1 },
    },
    '8': { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['39', 0] } },
    '28': { class_type: 'SaveAnimatedWEBP', inputs: { images: ['8', 0], filename_prefix: 'slipstream/wan', fps: 16, lossless: false, quality: 90, method: 'default' } },
  };
}

function flux(): ApiWorkflow {
  return {
    '12': { class_type: 'UNETLoader', inputs: { unet_name: 'flux1-dev.safetensors', weight_dtype: 'default' } },
    '11': { class_type: 'DualCLIPLoader', inputs: { clip_name1: 't5xxl_fp16.safetensors', clip_name2: 'clip_l.safetensors', type: 'flux', device: 'default' } },
    '10': { class_type: 'VAELoader', inputs: { vae_name: 'ae.safetensors' } },
    '6': { class_type: 'CLIPTextEncode', inputs: { clip: ['11', 0], text: 'a lighthouse on a cliff at dusk, waves below, cinematic' } },
    '33': { class_type: 'CLIPTextEncode', inputs: { clip: ['11', 0], text: '' } },
    '26': { class_type: 'FluxGuidance', inputs: { conditioning: ['6', 0], guidance: 3.5 } },
    '27': { class_type: 'EmptySD3LatentImage', inputs: { width: 1024, height: 1024, batch_size: 1 } },
    '31': {
      class_type: 'KSampler',
      inputs: { model: ['12', 0], positive: ['26', 0], negative: ['33', 0], latent_image: ['27', 0], seed: 42, steps: 20, cfg: 1, sampler_name: 'euler', scheduler: 'simple', denoise: 1 },
    },
    '8': { class_type: 'VAEDecode', inputs: { samples: ['31', 0], vae: ['10', 0] } },
    '9': { class_type: 'SaveImage', inputs: { images: ['8', 0], filename_prefix: 'slipstream/flux' } },
  };
}

/** The UI (LiteGraph) form of an API workflow of core nodes, laid out left to right by depth. */
export function toUi(api: ApiWorkflow): UiWorkflow {
  const ids = Object.keys(api);
  const depth = new Map<string, number>();
  const depthOf = (id: string): number => {
    if (!depth.has(id)) {
      const up = Object.values(api[id].inputs).filter(Array.isArray).map((l) => depthOf((l as [string, number])[0]) + 1);
      depth.set(id, Math.max(0, ...up));
    }
    return depth.get(id)!;
  };
  const rows = new Map<number, number>();
  const links: UiWorkflow['links'] = [];
  const nodes = ids.map((id, order) => {
    const n = api[id];
    const core = CORE[n.class_type];
    if (!core) throw new Error(`examples: no node definition for ${n.class_type}`);
    const d = depthOf(id);
    const row = rows.get(d) ?? 0;
    rows.set(d, row + 1);
    const widgets = core.widgets.flatMap((w) => (w === 'seed' ? [n.inputs[w], 'fixed'] : [n.inputs[w]]));
    return {
      id: Number(id),
      type: n.class_type,
      pos: [40 + 360 * d, 40 + 220 * row] as [number, number],
      size: [320, 80 + 26 * core.widgets.length] as [number, number],
      flags: {},
      order,
      mode: 0,
      inputs: core.links.map(([name, type]) => ({ name, type, link: null as number | null })),
      outputs: core.outputs.map(([name, type], slot) => ({ name, type, links: [] as number[], slot_index: slot })),
      properties: { 'Node name for S&R': n.class_type },
      widgets_values: widgets,
    };
  });
  const byId = new Map(nodes.map((n) => [String(n.id), n]));
  for (const [id, n] of Object.entries(api))
    for (const [i, [name, type]] of CORE[n.class_type].links.entries()) {
      const l = n.inputs[name] as [string, number] | undefined;
      if (!l) continue;
      const link = links.length + 1;
      links.push([link, Number(l[0]), l[1], Number(id), i, type]);
      byId.get(id)!.inputs[i].link = link;
      byId.get(l[0])!.outputs[l[1]].links.push(link);
    }
  return {
    last_node_id: Math.max(...nodes.map((n) => n.id)),
    last_link_id: links.length,
    nodes,
    links,
    groups: [],
    config: {},
    extra: {},
    version: 0.4,
  };
}

export function exampleWorkflows(): { file: string; workflow: unknown }[] {
  const bases: [string, ApiWorkflow][] = [
    ['wan2.1-t2v-1.3b', wan('wan2.1_t2v_1.3B_fp16.safetensors', [832, 480])],
    ['wan2.1-t2v-14b', wan('wan2.1_t2v_14B_fp16.safetensors', [1280, 720])],
    ['flux1-dev', flux()],
  ];
  return bases.flatMap(([name, api]) => [
    { file: `${name}.api.json`, workflow: accelerateApi(api, undefined, name) },
    { file: `${name}.ui.json`, workflow: accelerateUi(toUi(api), undefined, name) },
  ]);
}
