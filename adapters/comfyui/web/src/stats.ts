/**
 * The run statistics our nodes push (`slipstream.stats` on ComfyUI's socket, from
 * slipstream_comfy/nodes.py), kept per node for the sidebar chart and the node badges. No DOM here.
 */
export interface DeltaCacheStats {
  node: 'SlipstreamDeltaCache';
  blocks_computed: number;
  blocks_skipped: number;
  seconds_saved_estimate: number;
  /** [step, blocks computed, blocks skipped] */
  per_step: [number, number, number][];
}

export interface AttentionStats {
  node: 'SlipstreamAttention';
  attention_calls: number;
  attention_declined: number;
  sparsity: number;
  /** [step, mean sparsity of the step's sparse calls] */
  per_step: [number, number][];
}

export interface MixedPrecisionStats {
  node: 'SlipstreamMixedPrecision';
  /** Block calls at each activation precision over the run. */
  blocks_by_precision: { nvfp4: number; int8: number; full: number };
  /** Calibrate mode: (Γ, NVFP4 error) pairs recorded. */
  samples: number;
  /** [step, {precision: block calls}] */
  per_step: [number, { nvfp4: number; int8: number; full: number }][];
}

export type RunStats = DeltaCacheStats | AttentionStats | MixedPrecisionStats;
const NODES: readonly RunStats['node'][] = ['SlipstreamDeltaCache', 'SlipstreamAttention', 'SlipstreamMixedPrecision'];

export function isRunStats(x: unknown): x is RunStats {
  const s = x as Partial<RunStats> | null;
  return typeof s === 'object' && s !== null && NODES.includes(s.node as RunStats['node']) && Array.isArray(s.per_step);
}

export interface Series {
  steps: number[];
  /** Share of blocks skipped at each step (NaN where the delta cache did not run). */
  skipped: number[];
  /** Attention sparsity at each step (NaN where no sparse attention ran). */
  sparsity: number[];
  /** Share of block calls with NVFP4 activations at each step (NaN where mixed precision did not run). */
  nvfp4: number[];
}

export class StatsHistory {
  #last = new Map<RunStats['node'], RunStats>();

  add(stats: RunStats): void {
    this.#last.set(stats.node, stats);
  }

  last<N extends RunStats['node']>(node: N): Extract<RunStats, { node: N }> | undefined {
    return this.#last.get(node) as Extract<RunStats, { node: N }> | undefined;
  }

  /** One line a node shows under its title. */
  badge(node: string): string | null {
    const c = this.last('SlipstreamDeltaCache');
    const a = this.last('SlipstreamAttention');
    if (node === 'SlipstreamDeltaCache' && c) {
      const total = c.blocks_computed + c.blocks_skipped;
      return `skipped ${c.blocks_skipped}/${total} blocks, ~${c.seconds_saved_estimate.toFixed(1)} s saved`;
    }
    if (node === 'SlipstreamAttention' && a) return `${a.attention_calls} calls, sparsity ${(100 * a.sparsity).toFixed(0)}%`;
    const m = this.last('SlipstreamMixedPrecision');
    if (node === 'SlipstreamMixedPrecision' && m) {
      const { nvfp4, int8, full } = m.blocks_by_precision;
      return m.samples > 0 ? `calibrated on ${m.samples} (Γ, error) pairs` : `blocks NVFP4 ${nvfp4}, INT8 ${int8}${full ? `, full ${full}` : ''}`;
    }
    return null;
  }

  series(): Series {
    const c = this.last('SlipstreamDeltaCache');
    const a = this.last('SlipstreamAttention');
    const m = this.last('SlipstreamMixedPrecision');
    const all = [...(c?.per_step ?? []), ...(a?.per_step ?? []), ...(m?.per_step ?? [])].map((p) => p[0]);
    const steps = [...new Set(all)].sort((x, y) => x - y);
    const skipped = new Map((c?.per_step ?? []).map(([s, computed, sk]) => [s, sk / Math.max(1, computed + sk)]));
    const sparsity = new Map((a?.per_step ?? []).map(([s, sp]) => [s, sp]));
    const nvfp4 = new Map((m?.per_step ?? []).map(([s, n]) => [s, n.nvfp4 / Math.max(1, n.nvfp4 + n.int8 + n.full)]));
    return {
      steps,
      skipped: steps.map((s) => skipped.get(s) ?? NaN),
      sparsity: steps.map((s) => sparsity.get(s) ?? NaN),
      nvfp4: steps.map((s) => nvfp4.get(s) ?? NaN),
    };
  }
}

/** An SVG line chart of the series (all in [0, 1]) against the step. */
export function chartSvg(s: Series, width = 280, height = 160): string {
  const pad = 24;
  const x = (i: number) => pad + ((width - 2 * pad) * i) / Math.max(1, s.steps.length - 1);
  const y = (v: number) => height - pad - (height - 2 * pad) * v;
  const line = (values: number[], colour: string) => {
    const pts = values.map((v, i) => (Number.isNaN(v) ? null : `${x(i).toFixed(1)},${y(v).toFixed(1)}`)).filter(Boolean);
    return pts.length ? `<polyline fill="none" stroke="${colour}" stroke-width="2" points="${pts.join(' ')}"/>` : '';
  };
  const last = s.steps.length ? s.steps[s.steps.length - 1] : 0;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect x="${pad}" y="${pad}" width="${width - 2 * pad}" height="${height - 2 * pad}" fill="none" stroke="#666"/>`,
    line(s.skipped, '#4fc3f7'),
    line(s.sparsity, '#ffb74d'),
    line(s.nvfp4, '#ba68c8'),
    `<text x="${pad}" y="${height - 6}" fill="#aaa" font-size="10">step 0</text>`,
    `<text x="${width - pad}" y="${height - 6}" fill="#aaa" font-size="10" text-anchor="end">step ${last}</text>`,
    `<text x="${pad}" y="14" fill="#4fc3f7" font-size="10">skipped blocks</text>`,
    `<text x="${width - pad}" y="14" fill="#ffb74d" font-size="10" text-anchor="end">attention sparsity</text>`,
    ...(s.nvfp4.some((v) => !Number.isNaN(v)) ? [`<text x="${width / 2}" y="14" fill="#ba68c8" font-size="10" text-anchor="middle">NVFP4 blocks</text>`] : []),
    '</svg>',
  ].join('');
}
