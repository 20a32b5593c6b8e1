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

export type RunStats = DeltaCacheStats | AttentionStats;

export function isRunStats(x: unknown): x is RunStats {
  const s = x as Partial<RunStats> | null;
  return typeof s === 'object' && s !== null && (s.node === 'SlipstreamDeltaCache' || s.node === 'SlipstreamAttention') && Array.isArray(s.per_step);
}

export interface Series {
  steps: number[];
  /** Share of blocks skipped at each step (NaN where the delta cache did not run). */
  skipped: number[];
  /** Attention sparsity at each step (NaN where no sparse attention ran). */
  sparsity: number[];
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
    return null;
  }

  series(): Series {
    const c = this.last('SlipstreamDeltaCache');
    const a = this.last('SlipstreamAttention');
    const steps = [...new Set([...(c?.per_step ?? []).map((p) => p[0]), ...(a?.per_step ?? []).map((p) => p[0])])].sort((x, y) => x - y);
    const skipped = new Map((c?.per_step ?? []).map(([s, computed, sk]) => [s, sk / Math.max(1, computed + sk)]));
    const sparsity = new Map((a?.per_step ?? []).map(([s, sp]) => [s, sp]));
    return { steps, skipped: steps.map((s) => skipped.get(s) ?? NaN), sparsity: steps.map((s) => sparsity.get(s) ?? NaN) };
  }
}

/** An SVG line chart of the two series (both in [0, 1]) against the step. */
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
    `<text x="${pad}" y="${height - 6}" fill="#aaa" font-size="10">step 0</text>`,
    `<text x="${width - pad}" y="${height - 6}" fill="#aaa" font-size="10" text-anchor="end">step ${last}</text>`,
    `<text x="${pad}" y="14" fill="#4fc3f7" font-size="10">skipped blocks</text>`,
    `<text x="${width - pad}" y="14" fill="#ffb74d" font-size="10" text-anchor="end">attention sparsity</text>`,
    '</svg>',
  ].join('');
}
