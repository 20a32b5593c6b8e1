import { describe, expect, it } from 'vitest';

import { encodeGif, sideBySide } from './gif.js';
import { renderReport } from './html.js';
import type { BlockAction, RunReport } from './types.js';
import { codeOf } from '../../../test/errors.js';

const NASTY = `red <circle> & "blue" square's`;

function tinyGif(shade: number): Uint8Array {
  const frames = [0, 1].map((t) => Uint8Array.from({ length: 4 * 4 * 3 }, (_, i) => (i * 13 + t * 40 + shade) & 0xff));
  const s = sideBySide(frames, frames, 4, 4);
  return encodeGif(s.frames, s.width, s.height, { delayMs: 100, scale: 2 });
}

function blockMap(steps: number, blocks: number): BlockAction[][] {
  const order: BlockAction[] = ['fp32', 'int8', 'nvfp4', 'mixed', 'skip'];
  return Array.from({ length: steps }, (_, s) => Array.from({ length: blocks }, (_, b) => order[(s * 3 + b) % 5]!));
}

function report(): RunReport {
  return {
    title: 'Slipstream <run> & co',
    createdAt: '2025-01-02T03:04:05.000Z',
    workflow: 'workflows/wan-mini.json',
    machine: { cpu: 'Test CPU', threads: 8, isa: 'avx512', node: 'v20.0.0' },
    model: { name: 'wan-mini', parameters: 12_345_678 },
    sampler: { name: 'euler', steps: 6, cfg: 5, shift: 1, frames: 2, height: 16, width: 16 },
    pipelines: [
      { name: 'baseline', description: 'FP32, nothing cached', weightBytes: 48 * 2 ** 20, peakRssBytes: 300 * 2 ** 20 },
      { name: 'accelerated', description: 'cache + INT8/NVFP4 "mixed"', weightBytes: 9 * 2 ** 20, peakRssBytes: 200 * 2 ** 20 },
    ],
    videos: [
      {
        prompt: NASTY,
        seed: 1,
        gif: 'video-0.gif',
        baselineSeconds: 2,
        acceleratedSeconds: 1,
        speedup: 2,
        psnr: 31.5,
        ssim: 0.97,
        blockMap: blockMap(6, 4),
        attentionSparsity: [0, 0.1, 0.2, 0.3, 0.4, 0.5],
      },
      {
        prompt: 'green triangle left',
        seed: 2,
        gif: 'video-1.gif',
        baselineSeconds: 2.5,
        acceleratedSeconds: 1.25,
        speedup: 2,
        psnr: Infinity,
        ssim: 1,
        blockMap: blockMap(5, 7),
      },
    ],
    totals: { baselineSeconds: 4.5, acceleratedSeconds: 2.25, speedup: 2, meanPsnr: 31.5, minPsnr: 31.5, meanSsim: 0.985, weightReduction: 48 / 9 },
    settings: { cache: { threshold: 0.05 }, precision: 'int8+nvfp4', '<key>': '<value>' },
  };
}

const gifs = { 'video-0.gif': tinyGif(0), 'video-1.gif': tinyGif(99) };

function count(text: string, needle: string | RegExp): number {
  return typeof needle === 'string' ? text.split(needle).length - 1 : (text.match(needle) ?? []).length;
}

/** Every element that needs a closing tag is closed, in order: a missing quote or '>' shows here. */
function checkNesting(html: string): void {
  const voids = new Set(['meta', 'img', 'br', 'hr', 'link', 'input']);
  const stack: string[] = [];
  for (const m of html.matchAll(/<(\/?)([a-zA-Z][a-zA-Z0-9]*)\b[^<>]*?(\/?)>/g)) {
    const [, closing, rawName, selfClosing] = m;
    const name = rawName!.toLowerCase();
    if (voids.has(name) || selfClosing) continue;
    if (!closing) stack.push(name);
    else expect(stack.pop(), `closing </${name}>`).toBe(name);
  }
  expect(stack).toEqual([]);
}

describe('renderReport', () => {
  const html = renderReport(report(), { gifs });

  it('is one self-contained page', () => {
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).not.toMatch(/\b(src|href)\s*=\s*["']?\s*(https?:)?\/\//i);
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/<link\b|@import|url\(/i);
    checkNesting(html);
  });

  it('escapes every string from the report', () => {
    expect(html).toContain('red &lt;circle&gt; &amp; &quot;blue&quot; square&#39;s');
    expect(html).not.toContain('<circle>');
    expect(html).toContain('<title>Slipstream &lt;run&gt; &amp; co</title>');
    expect(html).toContain('cache + INT8/NVFP4 &quot;mixed&quot;');
    expect(html).toContain('&lt;key&gt;');
    expect(html).not.toContain('<value>');
  });

  it('inlines one GIF per video, labelled baseline | accelerated', () => {
    const uris = [...html.matchAll(/data:image\/gif;base64,([A-Za-z0-9+/=]+)/g)].map((m) => m[1]!);
    expect(uris).toHaveLength(2);
    uris.forEach((b64, i) => {
      const bytes = Buffer.from(b64, 'base64');
      expect(bytes.subarray(0, 6).toString('latin1')).toBe('GIF89a');
      expect(new Uint8Array(bytes)).toEqual(gifs[`video-${i}.gif` as keyof typeof gifs]);
    });
    expect(count(html, '<figcaption>baseline | accelerated</figcaption>')).toBe(2);
    // 4×4 frames side by side with a 2-pixel gap, upscaled 2×: 20×8, shown at a whole multiple.
    expect(html).toMatch(/<img src="data:image\/gif;base64,[^"]+" width="520" height="208"/);
  });

  it('draws one heat-map rect per (step, block) and a legend of all five actions', () => {
    const maps = [...html.matchAll(/<svg class="chart heatmap"[\s\S]*?<\/svg>/g)].map((m) => m[0]);
    expect(maps).toHaveLength(2);
    expect(count(maps[0]!, '<rect')).toBe(6 * 4);
    expect(count(maps[1]!, '<rect')).toBe(5 * 7);
    expect(count(html, 'class="hm-cell"')).toBe(6 * 4 + 5 * 7);
    expect(maps[0]).toContain('<title>step 1, block 2: nvfp4</title>');
    for (const a of ['fp32', 'int8', 'nvfp4', 'mixed', 'skip']) expect(html).toMatch(new RegExp(`<i class="swatch"[^>]*></i>${a}\\b`));
  });

  it('charts the skipped fraction per step, and attention sparsity only where it was recorded', () => {
    const charts = [...html.matchAll(/<svg class="chart steps"[\s\S]*?<\/svg>/g)].map((m) => m[0]);
    expect(charts).toHaveLength(2);
    expect(count(charts[0]!, 'class="bar"')).toBe(6);
    expect(count(charts[1]!, 'class="bar"')).toBe(5);
    expect(count(charts[0]!, '<polyline')).toBe(1);
    expect(count(charts[0]!, '<circle')).toBe(6);
    expect(count(charts[1]!, '<polyline')).toBe(0);
    // blockMap(6, 4) skips block 1 at step 1 (0-based s=1: (3 + b) % 5 === 4 → b = 1): 1 of 4.
    expect(charts[0]).toContain('<title>step 2: 25.0% of blocks skipped</title>');
  });

  it('shows the summary numbers per pipeline', () => {
    expect(html).toContain('2.00×');
    expect(html).toContain('48.0 MiB');
    expect(html).toContain('9.00 MiB');
    expect(html).toContain('300.0 MiB');
    expect(html).toContain('5.33×');
    expect(html).toContain('31.50 dB');
    expect(html).toContain('∞ dB');
    expect(html).toContain('12.35M parameters');
  });

  it('refuses missing or broken inputs with clear errors', () => {
    expect(() => renderReport(report(), { gifs: { 'video-0.gif': gifs['video-0.gif'] } })).toThrowError(/assets\.gifs\["video-1\.gif"\]/);
    expect(() => renderReport({ ...report(), videos: [{ ...report().videos[0]!, gif: 'constructor' }] }, { gifs })).toThrowError(/assets\.gifs\["constructor"\]/);
    expect(() => renderReport(report(), { gifs: { ...gifs, 'video-1.gif': Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0, 0, 0) } })).toThrowError(/starting GIF89a/);
    const bad = report();
    bad.videos[1]!.blockMap[2]![3] = 'int4' as BlockAction;
    expect(() => renderReport(bad, { gifs })).toThrowError(/videos\[1\]\.blockMap\[2\]\[3\]/);
    const ragged = report();
    ragged.videos[0]!.blockMap[3]!.pop();
    expect(codeOf(() => renderReport(ragged, { gifs }))).toBe('SLIP_E_SHAPE_MISMATCH');
    const short = report();
    short.videos[0]!.attentionSparsity = [0.1];
    expect(() => renderReport(short, { gifs })).toThrowError(/expected 6 values .* for videos\[0\]\.attentionSparsity, got 1/);
    const outOfRange = report();
    outOfRange.videos[0]!.attentionSparsity![2] = 1.5;
    expect(() => renderReport(outOfRange, { gifs })).toThrowError(/videos\[0\]\.attentionSparsity\[2\]/);
  });

  it('renders a run without videos or settings', () => {
    const empty = renderReport({ ...report(), videos: [], settings: {} }, { gifs: {} });
    expect(empty).toContain('No videos in this run.');
    expect(empty).toContain('No options recorded.');
    checkNesting(empty);
  });
});
