/**
 * The report's inline SVG charts: what every block did at every step (a heat map) and how much
 * work was skipped per step. Plain SVG with no script or external reference, so the report opens
 * the same from disk, a mail attachment or a CI artefact.
 */
import { SlipstreamError, invalidArgument } from '../../../core/src/errors/index.js';
import { escapeHtml } from './escape.js';
import { BLOCK_ACTIONS, type BlockAction } from './types.js';

/** One colour per action; skip stands out because a skipped block is the cache at work. */
export const ACTION_COLOURS: Record<BlockAction, string> = {
  fp32: '#64748b',
  int8: '#3b82f6',
  nvfp4: '#10b981',
  mixed: '#8b5cf6',
  skip: '#f59e0b',
};

const ATTENTION_COLOUR = '#be123c';

/** Class of the heat map's cells, and only of them: one rect per (step, block). */
export const CELL_CLASS = 'hm-cell';

/** Steps and blocks of a rectangular block map of known actions; throws naming the bad entry. */
export function checkBlockMap(blockMap: BlockAction[][], name: string): { steps: number; blocks: number } {
  if (!Array.isArray(blockMap)) throw invalidArgument(name, 'an array of steps, each an array of block actions', blockMap);
  const blocks = blockMap.length > 0 && Array.isArray(blockMap[0]) ? blockMap[0].length : 0;
  blockMap.forEach((row, s) => {
    if (!Array.isArray(row)) throw invalidArgument(`${name}[${s}]`, 'an array of block actions', row);
    if (row.length !== blocks)
      throw new SlipstreamError('SLIP_E_SHAPE_MISMATCH', `expected ${blocks} blocks (as in step 0) for ${name}[${s}], got ${row.length}`);
    row.forEach((a, b) => {
      if (!BLOCK_ACTIONS.includes(a)) throw invalidArgument(`${name}[${s}][${b}]`, `one of ${BLOCK_ACTIONS.join(', ')}`, a);
    });
  });
  return { steps: blockMap.length, blocks };
}

export function checkSparsity(values: number[], steps: number, name: string): void {
  if (!Array.isArray(values)) throw invalidArgument(name, 'an array of fractions, one per step', values);
  if (steps > 0 && values.length !== steps)
    throw new SlipstreamError('SLIP_E_SHAPE_MISMATCH', `expected ${steps} values (one per step of the block map) for ${name}, got ${values.length}`);
  values.forEach((v, i) => {
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw invalidArgument(`${name}[${i}]`, 'a fraction in [0, 1]', v);
  });
}

/** Coordinates with two decimals: enough for a screen, and 700 cells stay small. */
const n = (v: number): string => String(Math.round(v * 100) / 100);

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));

/** Tick positions 0, k, 2k, … with k chosen so that about `target` labels show. */
function ticks(count: number, target: number): number[] {
  const every = Math.max(1, Math.ceil(count / target));
  return Array.from({ length: Math.ceil(count / every) }, (_, i) => i * every);
}

/** Fraction of blocks that were skipped at each step. */
export function skippedPerStep(blockMap: BlockAction[][]): number[] {
  return blockMap.map((row) => (row.length === 0 ? 0 : row.filter((a) => a === 'skip').length / row.length));
}

/** x = step (numbered from 1, as samplers log them), y = block (from 0, as the model names them). */
export function blockHeatMap(blockMap: BlockAction[][], label: string): string {
  const { steps, blocks } = checkBlockMap(blockMap, 'blockMap');
  if (steps === 0 || blocks === 0) return '';
  const cw = clamp(Math.floor(640 / steps), 3, 22);
  const ch = clamp(Math.floor(280 / blocks), 3, 14);
  const left = 46;
  const top = 6;
  const bottom = 34;
  const width = left + steps * cw + 8;
  const height = top + blocks * ch + bottom;
  const cells: string[] = [];
  for (let s = 0; s < steps; s += 1)
    for (let b = 0; b < blocks; b += 1) {
      const a = blockMap[s]![b]!;
      cells.push(
        `<rect class="${CELL_CLASS}" x="${n(left + s * cw)}" y="${n(top + b * ch)}" width="${n(cw)}" height="${n(ch)}" fill="${ACTION_COLOURS[a]}"><title>step ${s + 1}, block ${b}: ${a}</title></rect>`,
      );
    }
  const xLabels = ticks(steps, 12).map((s) => `<text x="${n(left + (s + 0.5) * cw)}" y="${n(top + blocks * ch + 13)}" text-anchor="middle">${s + 1}</text>`);
  const yLabels = ticks(blocks, 10).map((b) => `<text x="${left - 5}" y="${n(top + (b + 0.5) * ch + 3.5)}" text-anchor="end">${b}</text>`);
  return [
    `<svg class="chart heatmap" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeHtml(label)}">`,
    `<g shape-rendering="crispEdges">${cells.join('')}</g>`,
    xLabels.join(''),
    yLabels.join(''),
    `<text x="${n(left + (steps * cw) / 2)}" y="${height - 4}" text-anchor="middle" class="axis">step</text>`,
    `<text x="12" y="${n(top + (blocks * ch) / 2)}" text-anchor="middle" class="axis" transform="rotate(-90 12 ${n(top + (blocks * ch) / 2)})">block</text>`,
    '</svg>',
  ].join('\n');
}

/** Swatches with each action's share of all (step, block) cells; HTML, so it wraps with the page. */
export function actionLegend(blockMap: BlockAction[][]): string {
  const total = blockMap.reduce((t, row) => t + row.length, 0);
  const items = BLOCK_ACTIONS.map((a) => {
    const count = blockMap.reduce((t, row) => t + row.filter((x) => x === a).length, 0);
    const share = total === 0 ? '' : ` <span class="muted">${((100 * count) / total).toFixed(0)}%</span>`;
    return `<span><i class="swatch" style="background:${ACTION_COLOURS[a]}"></i>${a}${share}</span>`;
  });
  return `<div class="legend">${items.join('')}</div>`;
}

/**
 * Bars: the fraction of blocks skipped at each step. Line: the fraction of attention blocks that
 * sparse attention skipped, when the run used it. Both share the 0–100 % axis.
 */
export function stepChart(blockMap: BlockAction[][], attentionSparsity: number[] | undefined, label: string): string {
  const { steps } = checkBlockMap(blockMap, 'blockMap');
  if (attentionSparsity !== undefined) checkSparsity(attentionSparsity, steps, 'attentionSparsity');
  const count = Math.max(steps, attentionSparsity?.length ?? 0);
  if (count === 0) return '';
  const skipped = skippedPerStep(blockMap);
  const left = 40;
  const top = 8;
  const plotH = 120;
  const step = clamp(Math.floor(640 / count), 4, 22);
  const width = left + count * step + 8;
  const height = top + plotH + 34;
  const y = (f: number) => top + plotH * (1 - f);
  const grid = [0, 0.25, 0.5, 0.75, 1].map(
    (f) => `<line x1="${left}" x2="${left + count * step}" y1="${n(y(f))}" y2="${n(y(f))}" class="grid"/><text x="${left - 5}" y="${n(y(f) + 3.5)}" text-anchor="end">${f * 100}%</text>`,
  );
  const bars = skipped.map((f, s) => {
    const h = plotH * f;
    return `<rect class="bar" x="${n(left + s * step + step * 0.15)}" y="${n(y(f))}" width="${n(step * 0.7)}" height="${n(h)}" fill="${ACTION_COLOURS.skip}"><title>step ${s + 1}: ${(f * 100).toFixed(1)}% of blocks skipped</title></rect>`;
  });
  let line = '';
  if (attentionSparsity && attentionSparsity.length > 0) {
    const pts = attentionSparsity.map((f, s) => [left + (s + 0.5) * step, y(f)] as const);
    line =
      `<polyline points="${pts.map(([px, py]) => `${n(px)},${n(py)}`).join(' ')}" fill="none" stroke="${ATTENTION_COLOUR}" stroke-width="1.5"/>` +
      pts.map(([px, py], s) => `<circle cx="${n(px)}" cy="${n(py)}" r="2.2" fill="${ATTENTION_COLOUR}"><title>step ${s + 1}: ${(attentionSparsity[s]! * 100).toFixed(1)}% of attention blocks skipped</title></circle>`).join('');
  }
  const xLabels = ticks(count, 12).map((s) => `<text x="${n(left + (s + 0.5) * step)}" y="${top + plotH + 13}" text-anchor="middle">${s + 1}</text>`);
  const legend = [`<span><i class="swatch" style="background:${ACTION_COLOURS.skip}"></i>blocks skipped (cache)</span>`];
  if (line) legend.push(`<span><i class="swatch line" style="background:${ATTENTION_COLOUR}"></i>attention sparsity</span>`);
  return [
    `<svg class="chart steps" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeHtml(label)}">`,
    grid.join(''),
    bars.join(''),
    line,
    xLabels.join(''),
    `<text x="${n(left + (count * step) / 2)}" y="${height - 4}" text-anchor="middle" class="axis">step</text>`,
    '</svg>',
    `<div class="legend">${legend.join('')}</div>`,
  ].join('\n');
}
