import { describe, expect, it } from 'vitest';

import { ourNodes } from './nodes.js';
import { accelerate, parseProfile, type ApiWorkflow, type UiWorkflow } from './workflow.js';

const API: ApiWorkflow = {
  '37': { class_type: 'UNETLoader', inputs: { unet_name: 'wan2.1_t2v_1.3B_fp16.safetensors', weight_dtype: 'default' } },
  '48': { class_type: 'ModelSamplingSD3', inputs: { model: ['37', 0], shift: 8 } },
  '3': { class_type: 'KSampler', inputs: { model: ['48', 0], seed: 1, steps: 30, cfg: 6, positive: ['6', 0] } },
  '6': { class_type: 'CLIPTextEncode', inputs: { text: 'a fox', clip: ['38', 0] } },
  '38': { class_type: 'CLIPLoader', inputs: { clip_name: 'umt5.safetensors', type: 'wan' } },
};

function ui(): UiWorkflow {
  return {
    last_node_id: 48,
    last_link_id: 3,
    nodes: [
      { id: 37, type: 'UNETLoader', pos: [10, 10], outputs: [{ name: 'MODEL', type: 'MODEL', links: [1], slot_index: 0 }], widgets_values: ['wan.safetensors', 'default'] },
      { id: 48, type: 'ModelSamplingSD3', pos: [400, 10], inputs: [{ name: 'model', type: 'MODEL', link: 1 }], outputs: [{ name: 'MODEL', type: 'MODEL', links: [2] }], widgets_values: [8] },
      { id: 3, type: 'KSampler', pos: [800, 10], inputs: [{ name: 'model', type: 'MODEL', link: 2 }, { name: 'positive', type: 'CONDITIONING', link: 3 }], outputs: [{ name: 'LATENT', type: 'LATENT', links: [] }], widgets_values: [1, 'fixed', 30, 6] },
      { id: 6, type: 'CLIPTextEncode', pos: [400, 300], outputs: [{ name: 'CONDITIONING', type: 'CONDITIONING', links: [3] }], widgets_values: ['a fox'] },
    ],
    links: [
      [1, 37, 0, 48, 0, 'MODEL'],
      [2, 48, 0, 3, 0, 'MODEL'],
      [3, 6, 0, 3, 1, 'CONDITIONING'],
    ],
    version: 0.4,
  };
}

describe('accelerate, API format', () => {
  it('puts our nodes between the loader and what used its MODEL, with the manifests\' defaults', () => {
    const w = accelerate(API, undefined, 'wan.json') as ApiWorkflow;
    expect(w['49']).toMatchObject({ class_type: 'SlipstreamAttention', inputs: { model: ['37', 0], mode: 'sparse', topk: 0.5, start_percent: 0.2 } });
    expect(w['50']).toMatchObject({ class_type: 'SlipstreamDeltaCache', inputs: { model: ['49', 0], threshold: 0.06, max_skips: 2, cache_device: 'same' } });
    expect(w['48'].inputs.model).toEqual(['50', 0]);
    expect(Object.keys(w['50'].inputs)).toEqual(['model', ...ourNodes()[1].widgets.map((x) => x.name)]);
    expect(API['48'].inputs.model).toEqual(['37', 0]); // the input is not changed
  });

  it('changes nothing the second time, and a profile only changes values', () => {
    const once = accelerate(API, undefined, 'wan.json');
    expect(accelerate(once, undefined, 'wan.json')).toEqual(once);
    const profile = parseProfile({ 'sparse-attention': { topk: 0.2, startPercent: 0.1 } }, 'p.json');
    const tuned = accelerate(once, profile, 'wan.json') as ApiWorkflow;
    expect(tuned['49'].inputs).toMatchObject({ topk: 0.2, start_percent: 0.1, model: ['37', 0] });
    expect(tuned['50']).toEqual((once as ApiWorkflow)['50']);
    expect(accelerate(tuned, profile, 'wan.json')).toEqual(tuned);
  });

  it('with a profile, adds the nodes of the plugins it names', () => {
    const w = accelerate(API, parseProfile({ 'delta-cache': { threshold: 0.1 } }, 'p.json'), 'wan.json') as ApiWorkflow;
    expect(Object.values(w).map((n) => n.class_type).filter((c) => c.startsWith('Slipstream'))).toEqual(['SlipstreamDeltaCache']);
    expect(w['49'].inputs).toMatchObject({ model: ['37', 0], threshold: 0.1 });
  });

  it('adds mixed precision only when a profile names it (it needs a calibration file)', () => {
    const classes = (w: ApiWorkflow) => Object.values(w).map((n) => n.class_type).filter((c) => c.startsWith('Slipstream'));
    expect(classes(accelerate(API, undefined, 'wan.json') as ApiWorkflow)).toEqual(['SlipstreamAttention', 'SlipstreamDeltaCache']);
    const w = accelerate(API, parseProfile({ 'mixed-precision': { route: 'int8' } }, 'p.json'), 'wan.json') as ApiWorkflow;
    expect(classes(w)).toEqual(['SlipstreamMixedPrecision']);
    expect(w['49'].inputs).toMatchObject({ mode: 'apply', route: 'int8', hadamard_block: 128, calibration: 'slipstream-calibration.json' });
    expect(() => parseProfile({ 'mixed-precision': { gammaThreshold: 0.2 } }, 'p.json')).toThrow(/p\.json.*gammaThreshold/);
  });

  it('names the node and field of a bad workflow or profile', () => {
    expect(() => accelerate({ ...API, '3': { ...API['3'], inputs: { model: ['99', 0] } } }, undefined, 'w.json')).toThrow(
      'w.json: node 3 (KSampler) input model: links to node 99, which is not in the workflow',
    );
    expect(() => accelerate({ '1': { inputs: {} } }, undefined, 'w.json')).toThrow(/w.json: node "1": expected an object with a class_type/);
    expect(() => accelerate({ '6': { class_type: 'CLIPTextEncode', inputs: { text: 'a' } } }, undefined, 'w.json')).toThrow(/w.json: no model loader to accelerate after/);
    expect(() => parseProfile({ 'sparse-attention': { topk: 3 } }, 'p.json')).toThrow(/p.json: sparse-attention.topk/);
    expect(() => parseProfile({ 'sparse-atention': {} }, 'p.json')).toThrow(/p.json/);
    expect(() => accelerate([], undefined, 'w.json')).toThrow(/w.json: expected a JSON object/);
  });
});

describe('accelerate, UI format', () => {
  it('inserts linked nodes, retargets the loader\'s links, and is idempotent', () => {
    const w = accelerate(ui(), undefined, 'wan-ui.json') as UiWorkflow;
    const byId = new Map(w.nodes.map((n) => [n.id, n]));
    expect(w.last_node_id).toBe(50);
    expect(w.last_link_id).toBe(5);
    expect(byId.get(49)).toMatchObject({ type: 'SlipstreamAttention', inputs: [{ name: 'model', type: 'MODEL', link: 4 }] });
    expect(byId.get(49)!.widgets_values).toEqual(ourNodes()[0].widgets.map((x) => x.default));
    // Every link is recorded on both ends.
    for (const [id, from, slot, to, toSlot] of w.links) {
      expect(byId.get(from)!.outputs![slot].links).toContain(id);
      expect(byId.get(to)!.inputs![toSlot].link).toBe(id);
    }
    for (const n of w.nodes)
      for (const [slot, o] of (n.outputs ?? []).entries())
        for (const l of o.links ?? []) expect(w.links.find((x) => x[0] === l)!.slice(1, 3)).toEqual([n.id, slot]);
    // ModelSamplingSD3 now takes the delta cache's MODEL, which takes the attention node's.
    expect(w.links.find((l) => l[3] === 48)!.slice(1, 3)).toEqual([50, 0]);
    expect(w.links.find((l) => l[3] === 50)!.slice(1, 3)).toEqual([49, 0]);
    expect(w.links.find((l) => l[3] === 49)!.slice(1, 3)).toEqual([37, 0]);
    expect(accelerate(w, undefined, 'wan-ui.json')).toEqual(w);
  });

  it('names a broken link', () => {
    const w = ui();
    w.links.push([9, 37, 0, 77, 0, 'MODEL']);
    expect(() => accelerate(w, undefined, 'wan-ui.json')).toThrow(/wan-ui.json: links\[3\]: expected \[id, from node/);
  });
});
