/**
 * ComfyUI workflow files, both formats, as `slipstream comfy` reads and writes them:
 *   API format  { "<id>": { class_type, inputs: { name: literal | [source id, output index] }, _meta } }
 *   UI format   LiteGraph's { nodes: [{ id, type, inputs, outputs, widgets_values }], links: [[id,
 *               from node, from slot, to node, to slot, type]], last_node_id, last_link_id, ... }
 * `accelerate` puts SlipstreamAttention then SlipstreamDeltaCache between the model loader and
 * everything that used its MODEL; a workflow that already has them keeps them (only a profile's
 * values change), so running it twice changes nothing.
 */
import { z } from 'zod';

import { SlipstreamError } from '../../../core/src/errors/index.js';
import { formatIssues } from '../../../core/src/schema/index.js';
import { deltaCacheManifest } from '../../../plugins/delta-cache/manifest.js';
import { mixedPrecisionManifest } from '../../../plugins/mixed-precision/manifest.js';
import { sparseAttentionManifest } from '../../../plugins/sparse-attention/manifest.js';
import { ourNodes, type OurNode } from './nodes.js';

export type ApiWorkflow = Record<string, { class_type: string; inputs: Record<string, unknown>; _meta?: { title?: string } }>;

interface UiNode {
  id: number;
  type: string;
  pos?: [number, number];
  size?: [number, number] | Record<string, number>;
  inputs?: { name: string; type: string; link: number | null }[];
  outputs?: { name: string; type: string; links: number[] | null; slot_index?: number }[];
  widgets_values?: unknown[];
  [k: string]: unknown;
}
export interface UiWorkflow {
  nodes: UiNode[];
  links: [number, number, number, number, number, string][];
  last_node_id: number;
  last_link_id: number;
  [k: string]: unknown;
}

/** Loaders whose output (at this index) is the diffusion MODEL. */
export const MODEL_LOADERS: Record<string, number> = {
  UNETLoader: 0,
  CheckpointLoaderSimple: 0,
  CheckpointLoader: 0,
  ImageOnlyCheckpointLoader: 0,
  unCLIPCheckpointLoader: 0,
  UnetLoaderGGUF: 0,
  UnetLoaderGGUFAdvanced: 0,
};

/** The profile `--profile` takes: plugin id -> that plugin's parameters (its manifest's keys). */
export const comfyProfileSchema = z.strictObject({
  'sparse-attention': sparseAttentionManifest.params.optional(),
  'delta-cache': deltaCacheManifest.params.optional(),
  // The node's parameters only: its threshold comes from a calibration file.
  'mixed-precision': mixedPrecisionManifest.params.pick({ route: true, hadamardBlock: true }).optional(),
});
export type ComfyProfile = z.input<typeof comfyProfileSchema>;

function schemaError(where: string, message: string): SlipstreamError {
  return new SlipstreamError('SLIP_E_SCHEMA', `${where}: ${message}`);
}

function noLoader(where: string): SlipstreamError {
  return schemaError(where, `no model loader to accelerate after (expected one of ${Object.keys(MODEL_LOADERS).join(', ')})`);
}

export function parseProfile(value: unknown, where: string): z.output<typeof comfyProfileSchema> {
  const r = comfyProfileSchema.safeParse(value);
  if (!r.success) throw new SlipstreamError('SLIP_E_SCHEMA', formatIssues(r.error.issues, value, where).join('; '));
  return r.data;
}

export function workflowFormat(value: unknown, where: string): 'api' | 'ui' {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw schemaError(where, 'expected a JSON object (a ComfyUI workflow)');
  const v = value as Record<string, unknown>;
  if (Array.isArray(v.nodes) && Array.isArray(v.links)) return 'ui';
  const entries = Object.entries(v);
  if (entries.length === 0) throw schemaError(where, 'expected at least one node');
  for (const [id, node] of entries) {
    const n = node as Record<string, unknown> | null;
    if (typeof n !== 'object' || n === null || typeof n.class_type !== 'string')
      throw schemaError(where, `node ${JSON.stringify(id)}: expected an object with a class_type (API format) or a UI workflow with nodes and links`);
    if (typeof n.inputs !== 'object' || n.inputs === null || Array.isArray(n.inputs))
      throw schemaError(where, `node ${id} (${n.class_type}): expected an inputs object`);
  }
  return 'api';
}

/** Checks every link of an API workflow names an existing node and a whole output index. */
export function checkApiWorkflow(w: ApiWorkflow, where: string): void {
  workflowFormat(w, where);
  for (const [id, node] of Object.entries(w))
    for (const [name, value] of Object.entries(node.inputs)) {
      if (!Array.isArray(value)) continue;
      const [src, slot] = value as unknown[];
      if (value.length !== 2 || typeof src !== 'string' || !Number.isInteger(slot) || (slot as number) < 0)
        throw schemaError(where, `node ${id} (${node.class_type}) input ${name}: expected a link [source node id, output index], got ${JSON.stringify(value)}`);
      if (!(src in w)) throw schemaError(where, `node ${id} (${node.class_type}) input ${name}: links to node ${src}, which is not in the workflow`);
    }
}

function widgetValues(node: OurNode, profile: z.output<typeof comfyProfileSchema> | undefined): Map<string, unknown> {
  const params = profile?.[node.plugin as keyof typeof profile] as Record<string, unknown> | undefined;
  return new Map(node.widgets.map((w) => [w.name, w.plugin && params && w.key in params ? params[w.key] : w.default]));
}

/** Which of our nodes to add: the default ones, or the plugins a profile names. */
function chosen(profile: z.output<typeof comfyProfileSchema> | undefined): OurNode[] {
  const all = ourNodes();
  return profile ? all.filter((n) => profile[n.plugin as keyof typeof profile] !== undefined) : all.filter((n) => n.byDefault);
}

export function accelerateApi(input: ApiWorkflow, profile: z.output<typeof comfyProfileSchema> | undefined, where: string): ApiWorkflow {
  checkApiWorkflow(input, where);
  const w: ApiWorkflow = structuredClone(input);
  const nodes = chosen(profile);
  const present = Object.entries(w).filter(([, n]) => ourNodes().some((o) => o.classType === n.class_type));
  if (present.length) {
    // Already accelerated: a profile updates the values, nothing moves.
    if (profile)
      for (const [, n] of present) {
        const spec = ourNodes().find((o) => o.classType === n.class_type)!;
        if (profile[spec.plugin as keyof typeof profile] === undefined) continue;
        for (const [name, v] of widgetValues(spec, profile)) n.inputs[name] = v;
      }
    return w;
  }
  const loaders = Object.entries(w).filter(([, n]) => n.class_type in MODEL_LOADERS);
  if (loaders.length === 0)
    throw noLoader(where);
  let next = Math.max(0, ...Object.keys(w).map((id) => Number.parseInt(id, 10)).filter(Number.isFinite)) + 1;
  for (const [loaderId, loader] of loaders) {
    const slot = MODEL_LOADERS[loader.class_type];
    const consumers = Object.values(w).flatMap((n) =>
      Object.entries(n.inputs)
        .filter(([, v]) => Array.isArray(v) && v[0] === loaderId && v[1] === slot)
        .map(([name]) => ({ node: n, name })),
    );
    let source: [string, number] = [loaderId, slot];
    for (const spec of nodes) {
      const id = String(next++);
      w[id] = { class_type: spec.classType, inputs: { model: source, ...Object.fromEntries(widgetValues(spec, profile)) }, _meta: { title: spec.title } };
      source = [id, 0];
    }
    for (const c of consumers) c.node.inputs[c.name] = source;
  }
  return w;
}

function checkUiWorkflow(w: UiWorkflow, where: string): void {
  const ids = new Set<number>();
  w.nodes.forEach((n, i) => {
    if (typeof n !== 'object' || n === null || !Number.isInteger(n.id) || typeof n.type !== 'string')
      throw schemaError(where, `nodes[${i}]: expected an object with an integer id and a type`);
    ids.add(n.id);
  });
  w.links.forEach((l, i) => {
    if (!Array.isArray(l) || l.length < 6 || !ids.has(l[1]) || !ids.has(l[3]))
      throw schemaError(where, `links[${i}]: expected [id, from node, from slot, to node, to slot, type] between nodes of the workflow, got ${JSON.stringify(l)}`);
  });
  if (!Number.isInteger(w.last_node_id) || !Number.isInteger(w.last_link_id))
    throw schemaError(where, 'expected integer last_node_id and last_link_id');
}

export function accelerateUi(input: UiWorkflow, profile: z.output<typeof comfyProfileSchema> | undefined, where: string): UiWorkflow {
  checkUiWorkflow(input, where);
  const w: UiWorkflow = structuredClone(input);
  const present = w.nodes.filter((n) => ourNodes().some((o) => o.classType === n.type));
  if (present.length) {
    if (profile)
      for (const n of present) {
        const spec = ourNodes().find((o) => o.classType === n.type)!;
        if (profile[spec.plugin as keyof typeof profile] !== undefined) n.widgets_values = [...widgetValues(spec, profile).values()];
      }
    return w;
  }
  const loaders = w.nodes.filter((n) => n.type in MODEL_LOADERS);
  if (loaders.length === 0)
    throw noLoader(where);
  for (const loader of loaders) {
    const slot = Math.max(0, loader.outputs?.findIndex((o) => o.type === 'MODEL') ?? MODEL_LOADERS[loader.type]);
    const out = loader.outputs?.[slot];
    const moved = w.links.filter((l) => l[1] === loader.id && l[2] === slot);
    let from = { id: loader.id, slot, outputs: loader.outputs };
    const [x, y] = loader.pos ?? [0, 0];
    chosen(profile).forEach((spec, i) => {
      const id = ++w.last_node_id;
      const link = ++w.last_link_id;
      w.links.push([link, from.id, from.slot, id, 0, 'MODEL']);
      const source = from.outputs?.[from.slot];
      if (source) source.links = [...(source.links ?? []).filter((l) => !moved.some((m) => m[0] === l)), link];
      const node: UiNode = {
        id,
        type: spec.classType,
        pos: [x + 380 * (i + 1), y],
        size: [320, 60 + 26 * spec.widgets.length],
        flags: {},
        order: 0,
        mode: 0,
        inputs: [{ name: 'model', type: 'MODEL', link }],
        outputs: [{ name: 'MODEL', type: 'MODEL', links: [], slot_index: 0 }],
        properties: { 'Node name for S&R': spec.classType },
        widgets_values: [...widgetValues(spec, profile).values()],
        title: spec.title,
      };
      w.nodes.push(node);
      from = { id, slot: 0, outputs: node.outputs };
    });
    for (const l of moved) {
      l[1] = from.id;
      l[2] = from.slot;
      const target = w.nodes.find((n) => n.id === l[3])?.inputs?.[l[4]];
      if (target) target.link = l[0];
    }
    const last = from.outputs?.[0];
    if (last && from.id !== loader.id) last.links = moved.map((l) => l[0]);
    if (out && from.id === loader.id) out.links = moved.map((l) => l[0]);
  }
  return w;
}

export function accelerate(value: unknown, profile: z.output<typeof comfyProfileSchema> | undefined, where: string): unknown {
  return workflowFormat(value, where) === 'api'
    ? accelerateApi(value as ApiWorkflow, profile, where)
    : accelerateUi(value as UiWorkflow, profile, where);
}
