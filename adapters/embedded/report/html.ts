/**
 * The run's report as one HTML file: GIFs inlined as data: URIs, CSS inline, charts as inline
 * SVG, no script and no reference outside the file, so it can be mailed, archived or opened from
 * a CI artefact and look the same. Every string from the report passes through escapeHtml.
 */
import { SlipstreamError, invalidArgument } from '../../../core/src/errors/index.js';
import { actionLegend, blockHeatMap, checkBlockMap, checkSparsity, skippedPerStep, stepChart } from './charts.js';
import { escapeHtml as esc } from './escape.js';
import type { PipelineSummary, RunReport, VideoResult } from './types.js';

export interface ReportAssets {
  /** GIF bytes by file name, the names VideoResult.gif uses. */
  gifs: Record<string, Uint8Array>;
}

const CSS = `
:root { --fg: #1f2937; --muted: #6b7280; --line: #e5e7eb; --soft: #f9fafb; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--fg); line-height: 1.45; max-width: 1120px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 1.6rem; margin: 0 0 2px; }
h2 { font-size: 1.2rem; margin: 32px 0 8px; }
h3 { font-size: 1.05rem; margin: 0 0 8px; }
.muted { color: var(--muted); }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 18px 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 150px; }
.card .value { font-size: 1.45rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .label { font-size: .82rem; color: var(--muted); }
table { border-collapse: collapse; font-size: .9rem; margin: 6px 0 12px; }
th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; background: var(--soft); }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.video { border-top: 1px solid var(--line); padding-top: 18px; margin-top: 26px; }
.video-body { display: flex; flex-wrap: wrap; gap: 20px; align-items: flex-start; }
figure { margin: 0; }
figure img { display: block; image-rendering: pixelated; max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { text-align: center; font-size: .85rem; color: var(--muted); margin-top: 4px; }
.charts { margin-top: 14px; display: flex; flex-wrap: wrap; gap: 24px; }
.chart-box h4 { font-size: .9rem; font-weight: 600; margin: 0 0 4px; }
svg.chart { display: block; max-width: 100%; height: auto; }
svg.chart text { font-family: inherit; font-size: 10px; fill: var(--muted); }
svg.chart text.axis { font-size: 11px; fill: var(--fg); }
svg.chart .grid { stroke: var(--line); stroke-width: 1; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; font-size: .82rem; margin-top: 6px; }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
.swatch.line { height: 3px; vertical-align: 3px; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .84rem; }
pre { background: var(--soft); margin: 0; padding: 4px 6px; border-radius: 4px; white-space: pre-wrap; }
footer { margin-top: 40px; font-size: .8rem; color: var(--muted); }
`;

/** 2 decimals by default; Infinity (identical frames give an infinite PSNR) as ∞, a missing number as —. */
function num(value: number, digits = 2): string {
  if (typeof value !== 'number' || Number.isNaN(value)) return '—';
  if (!Number.isFinite(value)) return value > 0 ? '∞' : '−∞';
  return value.toFixed(digits);
}

function bytes(value: number): string {
  if (typeof value !== 'number' || !Number.isFinite(value)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = value;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

function count(value: number): string {
  if (typeof value !== 'number' || !Number.isFinite(value)) return '—';
  const [div, suffix] = value >= 1e9 ? [1e9, 'B'] : value >= 1e6 ? [1e6, 'M'] : value >= 1e3 ? [1e3, 'K'] : [1, ''];
  return div === 1 ? String(value) : `${(value / div).toFixed(2)}${suffix}`;
}

const seconds = (value: number): string => `${num(value, value < 10 ? 3 : 2)} s`;
const times = (value: number): string => `${num(value)}×`;
const db = (value: number): string => `${num(value)} dB`;
const percent = (value: number): string => `${num(value * 100, 1)}%`;

/** Width and height from a GIF's logical screen descriptor, after checking the signature. */
function gifSize(gif: Uint8Array, name: string): { width: number; height: number } {
  const signature = String.fromCharCode(...gif.subarray(0, 6));
  if (gif.length < 10 || (signature !== 'GIF89a' && signature !== 'GIF87a'))
    throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected GIF bytes (starting GIF89a) for assets.gifs[${JSON.stringify(name)}], got ${gif.length} bytes starting ${JSON.stringify(signature)}`);
  return { width: gif[6]! | (gif[7]! << 8), height: gif[8]! | (gif[9]! << 8) };
}

function dataUri(gif: Uint8Array): string {
  return `data:image/gif;base64,${Buffer.from(gif.buffer, gif.byteOffset, gif.byteLength).toString('base64')}`;
}

/** Which pipeline is the reference and which the accelerated run: by name, else by position. */
function roles(pipelines: PipelineSummary[]): { baseline?: PipelineSummary; accelerated?: PipelineSummary } {
  const byName = (name: string) => pipelines.find((p) => p.name.toLowerCase() === name);
  const baseline = byName('baseline') ?? pipelines[0];
  const accelerated = byName('accelerated') ?? pipelines.find((p) => p !== baseline);
  return { baseline, accelerated };
}

function card(value: string, label: string): string {
  return `<div class="card"><div class="value">${esc(value)}</div><div class="label">${esc(label)}</div></div>`;
}

function summary(r: RunReport): string {
  const t = r.totals;
  const { baseline, accelerated } = roles(r.pipelines);
  const rows = r.pipelines.map((p) => {
    const cells =
      p === baseline
        ? [seconds(t.baselineSeconds), times(1), 'reference', 'reference', 'reference']
        : p === accelerated
          ? [seconds(t.acceleratedSeconds), times(t.speedup), db(t.meanPsnr), db(t.minPsnr), num(t.meanSsim, 4)]
          : ['—', '—', '—', '—', '—'];
    return `<tr><td><strong>${esc(p.name)}</strong></td><td>${esc(p.description)}</td>${cells.map((c) => `<td class="num">${esc(c)}</td>`).join('')}<td class="num">${esc(bytes(p.weightBytes))}</td><td class="num">${esc(bytes(p.peakRssBytes))}</td></tr>`;
  });
  return `<div class="cards">
${card(times(t.speedup), 'speedup (total time)')}
${card(db(t.meanPsnr), `mean PSNR (min ${db(t.minPsnr)})`)}
${card(num(t.meanSsim, 4), 'mean SSIM')}
${card(times(t.weightReduction), 'less weight memory')}
</div>
<table class="summary">
<thead><tr><th>pipeline</th><th>what it turns on</th><th class="num">total time</th><th class="num">speedup</th><th class="num">mean PSNR</th><th class="num">min PSNR</th><th class="num">mean SSIM</th><th class="num">weight memory</th><th class="num">peak RSS</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>
<p class="muted">PSNR and SSIM compare the accelerated frames with the baseline frames (8-bit RGB).</p>`;
}

function runDetails(r: RunReport): string {
  const m = r.machine;
  const s = r.sampler;
  const rows: [string, string][] = [
    ['created', r.createdAt],
    ['workflow', r.workflow],
    ['machine', `${m.cpu}, ${m.threads} threads, ${m.isa}, Node ${m.node}`],
    ['model', `${r.model.name} (${count(r.model.parameters)} parameters)`],
    ['sampler', `${s.name}: ${s.steps} steps, cfg ${s.cfg}, shift ${s.shift}, ${s.frames} frames of ${s.width}×${s.height}`],
  ];
  return `<table class="details"><tbody>
${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('\n')}
</tbody></table>`;
}

/** JSON that cannot throw: bigints as strings, cycles marked. */
function json(value: unknown): string {
  const seen = new WeakSet<object>();
  const text = JSON.stringify(
    value,
    (_, v: unknown) => {
      if (typeof v === 'bigint') return v.toString();
      if (typeof v === 'object' && v !== null) {
        if (seen.has(v)) return '[circular]';
        seen.add(v);
      }
      return v;
    },
    2,
  );
  return text ?? String(value);
}

function settings(values: Record<string, unknown>): string {
  const entries = Object.entries(values ?? {});
  if (entries.length === 0) return '<p class="muted">No options recorded.</p>';
  const cell = (v: unknown) =>
    typeof v === 'object' && v !== null ? `<pre>${esc(json(v))}</pre>` : `<code>${esc(typeof v === 'string' ? v : json(v))}</code>`;
  return `<table class="settings"><tbody>
${entries.map(([k, v]) => `<tr><th><code>${esc(k)}</code></th><td>${cell(v)}</td></tr>`).join('\n')}
</tbody></table>`;
}

function video(v: VideoResult, i: number, gifs: Record<string, Uint8Array>): string {
  const where = `videos[${i}]`;
  // hasOwn: a file name such as "constructor" must not find the object's prototype.
  const gif = typeof v.gif === 'string' && Object.hasOwn(gifs, v.gif) ? gifs[v.gif] : undefined;
  if (!(gif instanceof Uint8Array)) throw invalidArgument(`assets.gifs[${JSON.stringify(v.gif)}]`, `the GIF bytes of ${where}`, gif);
  const size = gifSize(gif, v.gif);
  // Small GIFs shown at a whole multiple of their size, so pixelated scaling keeps every pixel square.
  const zoom = Math.max(1, Math.floor(520 / size.width));
  const { steps, blocks } = checkBlockMap(v.blockMap, `${where}.blockMap`);
  if (v.attentionSparsity !== undefined) checkSparsity(v.attentionSparsity, steps, `${where}.attentionSparsity`);
  const skipped = skippedPerStep(v.blockMap);
  const rows: [string, string][] = [
    ['baseline', seconds(v.baselineSeconds)],
    ['accelerated', seconds(v.acceleratedSeconds)],
    ['speedup', times(v.speedup)],
    ['PSNR', db(v.psnr)],
    ['SSIM', num(v.ssim, 4)],
  ];
  if (steps > 0) rows.push(['blocks skipped', percent(skipped.reduce((a, b) => a + b, 0) / steps)]);
  if (v.attentionSparsity && v.attentionSparsity.length > 0)
    rows.push(['attention sparsity (mean)', percent(v.attentionSparsity.reduce((a, b) => a + b, 0) / v.attentionSparsity.length)]);
  const heat = blockHeatMap(v.blockMap, `What each of ${blocks} blocks did at each of ${steps} steps`);
  const chart = stepChart(v.blockMap, v.attentionSparsity, 'Fraction of blocks skipped per step');
  return `<section class="video" id="video-${i}">
<h3>${esc(v.prompt)} <span class="muted">seed ${esc(v.seed)}</span></h3>
<div class="video-body">
<figure>
<img src="${dataUri(gif)}" width="${size.width * zoom}" height="${size.height * zoom}" alt="${esc(`baseline | accelerated: ${v.prompt}`)}">
<figcaption>baseline | accelerated</figcaption>
</figure>
<table class="numbers"><tbody>
${rows.map(([k, val]) => `<tr><th>${esc(k)}</th><td class="num">${esc(val)}</td></tr>`).join('\n')}
</tbody></table>
</div>
<div class="charts">
${heat ? `<div class="chart-box"><h4>Block actions (accelerated run)</h4>\n${heat}\n${actionLegend(v.blockMap)}</div>` : '<p class="muted">No block map recorded.</p>'}
${chart ? `<div class="chart-box"><h4>Skipped per step</h4>\n${chart}</div>` : ''}
</div>
</section>`;
}

/** The whole report page. assets.gifs must hold the bytes of every VideoResult.gif. */
export function renderReport(report: RunReport, assets: ReportAssets): string {
  if (typeof report !== 'object' || report === null) throw invalidArgument('report', 'a RunReport object', report);
  if (!Array.isArray(report.videos)) throw invalidArgument('report.videos', 'an array', report.videos);
  if (!Array.isArray(report.pipelines)) throw invalidArgument('report.pipelines', 'an array', report.pipelines);
  if (typeof assets?.gifs !== 'object' || assets.gifs === null) throw invalidArgument('assets.gifs', 'an object of GIF bytes by file name', assets?.gifs);
  const videos = report.videos.map((v, i) => video(v, i, assets.gifs));
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="Slipstream">
<title>${esc(report.title)}</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>${esc(report.title)}</h1>
<div class="muted">${esc(report.createdAt)} · ${esc(report.model.name)} · ${esc(report.machine.cpu)}</div>
</header>
<main>
<h2>Summary</h2>
${summary(report)}
<h2>Run</h2>
${runDetails(report)}
<h2>Videos</h2>
${videos.length > 0 ? videos.join('\n') : '<p class="muted">No videos in this run.</p>'}
<h2>Accelerated pipeline settings</h2>
${settings(report.settings)}
</main>
<footer>Generated by Slipstream. Self-contained: no scripts, fonts or network.</footer>
</body>
</html>
`;
}
