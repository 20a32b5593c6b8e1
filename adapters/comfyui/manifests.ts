/**
 * What the ComfyUI node pack builds its nodes from, as JSON (adapters/comfyui/slipstream_comfy/
 * manifests.json, written by `npm run schemas`): the plugin manifests' parameters (declared once,
 * in plugins/<id>/manifest.ts) and each node's own widgets, in widget order. The Python nodes and
 * `slipstream comfy accelerate` both read this, so a widget is declared once too.
 */
import { z } from 'zod';

import { deltaCacheManifest } from '../../plugins/delta-cache/manifest.js';
import type { PluginManifest } from '../../plugins/manifest.js';
import { mixedPrecisionManifest } from '../../plugins/mixed-precision/manifest.js';
import { sparseAttentionManifest } from '../../plugins/sparse-attention/manifest.js';

const manifests: PluginManifest[] = [sparseAttentionManifest, deltaCacheManifest, mixedPrecisionManifest];

/** A node's own widget, in the JSON Schema terms the plugin parameters come in. */
export interface ComfyWidget {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean';
  enum?: string[];
  default: string | number | boolean;
  minimum?: number;
  description: string;
}

export interface ComfyNodeSpec {
  id: string;
  displayName: string;
  /** The plugin whose parameters it shows, or null for a node with only its own widgets. */
  plugin: string | null;
  /** The plugin parameters it shows (manifest keys), in order; all of them when absent. */
  params?: string[];
  /** Its own widgets, before and after the plugin's. */
  before: ComfyWidget[];
  after: ComfyWidget[];
  /** What the node does, for a node with no plugin (a plugin node shows its manifest's). */
  description?: string;
  /** Whether `slipstream comfy accelerate` inserts it when no profile names the plugins (a node
   *  that needs a file of the user's, such as a calibration, is inserted only when named). */
  byDefault?: boolean;
}

export const COMFY_NODES: ComfyNodeSpec[] = [
  {
    id: 'SlipstreamAttention',
    displayName: 'Slipstream Attention',
    plugin: 'sparse-attention',
    byDefault: true,
    before: [
      {
        name: 'mode',
        type: 'string',
        enum: ['sparse', 'low-bit', 'sparse-linear'],
        default: 'sparse',
        description:
          'sparse: SpargeAttention2 block mask + SageAttention2; low-bit: dense SageAttention2; sparse-linear: SLA2 (a trained router\'s critical tiles in softmax attention, the rest in linear attention) from sla_weights',
      },
      { name: 'min_tokens', type: 'integer', minimum: 0, default: 0, description: "shorter sequences keep ComfyUI's attention" },
    ],
    after: [
      {
        name: 'sla_weights',
        type: 'string',
        default: 'slipstream-sla2.safetensors',
        description:
          'sparse-linear: the SLA2 router, mixing ratio and projection per block (slipstream-sla2/1, as sparse_finetune.py --sla-out writes it); blocks it lacks keep ComfyUI\'s attention; relative paths are under ComfyUI\'s user directory',
      },
    ],
  },
  {
    id: 'SlipstreamDeltaCache',
    displayName: 'Slipstream Delta Cache',
    plugin: 'delta-cache',
    byDefault: true,
    // PDR acts on the linears a SlipstreamMixedPrecision node quantizes (without one it changes nothing).
    params: ['threshold', 'maxSkips', 'warmupSteps', 'finalSteps', 'purify', 'outlierRatio', 'purifyPrecision'],
    before: [],
    after: [
      { name: 'cache_device', type: 'string', enum: ['same', 'cpu'], default: 'same', description: 'where cached block deltas live (cpu frees VRAM)' },
      { name: 'verbose', type: 'boolean', default: false, description: 'log computed and skipped blocks per run' },
    ],
  },
  {
    id: 'SlipstreamMixedPrecision',
    displayName: 'Slipstream Mixed Precision',
    plugin: 'mixed-precision',
    // The threshold comes from the calibration file; a checkpoint is the embedded runtime's.
    params: ['route', 'hadamardBlock'],
    before: [
      {
        name: 'mode',
        type: 'string',
        enum: ['apply', 'calibrate'],
        default: 'apply',
        description:
          'apply: NVFP4 weights, activations NVFP4 or INT8 per block and step; calibrate: record each block\'s NVFP4 error against Γ while the workflow runs, then write the calibration file',
      },
    ],
    after: [
      {
        name: 'calibration',
        type: 'string',
        default: 'slipstream-calibration.json',
        description:
          'the calibration file (slipstream-profile/1, as `slipstream calibrate` writes it): read by apply with route dmpq, written at the end of a calibrate run; relative paths are under ComfyUI\'s user directory',
      },
      { name: 'target_error', type: 'number', minimum: 0, default: 0, description: 'calibrate: the relative NVFP4 error a block may have (0: the median measured)' },
    ],
  },
  {
    id: 'SlipstreamPrune',
    displayName: 'Slipstream Prune',
    plugin: null,
    description:
      'Structured pruning masks (DDP or any mask maker) on self-attention heads and MLP channels: removed units are not computed, kept ones keep their gate. ' +
      'Place it after Slipstream Attention so that attention runs on the kept heads only.',
    before: [
      {
        name: 'masks',
        type: 'string',
        default: 'slipstream-masks.safetensors',
        description:
          'a safetensors file of F32 gates, blocks.<i>.self_attn.head_gate [heads] and blocks.<i>.ffn.channel_gate [ffn_dim] (0 removes a unit); relative paths are under ComfyUI\'s user directory',
      },
    ],
    after: [],
  },
  {
    id: 'SlipstreamProfile',
    displayName: 'Slipstream Profile',
    plugin: null,
    description: 'Applies a JSON profile of Slipstream plugin parameters: attention and the delta cache in one node.',
    before: [
      {
        name: 'profile',
        type: 'string',
        default: 'slipstream-profile.json',
        description:
          'a JSON file of plugin parameters by plugin id, e.g. {"sparse-attention": {"topk": 0.3}, "delta-cache": {}} (the format of `slipstream comfy accelerate --profile`); relative paths are under ComfyUI\'s user directory',
      },
    ],
    after: [],
  },
];

/** A plugin parameter's widget name: its manifest key in snake_case (ComfyUI's convention). */
export function widgetName(key: string): string {
  return key.replace(/(?<!^)([A-Z])/g, '_$1').toLowerCase();
}

/** The params' JSON Schema with each property's widget name under "x-widget". */
function withWidgetNames(schema: Record<string, unknown>): Record<string, unknown> {
  const props = schema.properties as Record<string, Record<string, unknown>>;
  return { ...schema, properties: Object.fromEntries(Object.entries(props).map(([k, v]) => [k, { ...v, 'x-widget': widgetName(k) }])) };
}

export interface ComfyManifest {
  id: string;
  title: string;
  description: string;
  source: string;
  params: Record<string, unknown>;
}

export function comfyManifests(): { plugins: ComfyManifest[]; nodes: ComfyNodeSpec[] } {
  const plugins = manifests
    .filter((m) => m.runtimes.includes('comfyui'))
    .map((m) => ({
      id: m.id,
      title: m.title,
      description: m.description,
      source: m.source,
      params: withWidgetNames(z.toJSONSchema(m.params, { target: 'draft-2020-12', io: 'input' }) as Record<string, unknown>),
    }));
  return { plugins, nodes: COMFY_NODES };
}

export function renderComfyManifests(): string {
  return `${JSON.stringify(comfyManifests(), null, 2)}\n`;
}
