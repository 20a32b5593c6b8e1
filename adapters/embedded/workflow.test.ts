import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { SlipstreamError } from '../../core/src/errors/index.js';
import { TemporalDeltaCache } from '../../plugins/delta-cache/tdc.js';
import { deltaCacheManifest } from '../../plugins/delta-cache/manifest.js';
import { MixedPrecision } from '../../plugins/mixed-precision/dmpq.js';
import { mixedPrecisionManifest } from '../../plugins/mixed-precision/manifest.js';
import { profileSchema, type Profile } from '../../plugins/profile.js';
import { EasyCache } from '../../plugins/reference-caches/easycache.js';
import { referenceCachesManifest } from '../../plugins/reference-caches/manifest.js';
import { FirstBlockCache, MagCache, TeaCache } from '../../plugins/reference-caches/stack-caches.js';
import { sparseAttentionManifest } from '../../plugins/sparse-attention/manifest.js';
import { acceleratedWeights, buildAccelerators } from './accelerators.js';
import { loadWorkflow, workflowSchema } from './workflow.js';
import { thrown } from '../../test/errors.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const DEFAULT = path.join(REPO, 'workflows', 'default.json');

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'slipstream-workflow-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

let files = 0;
async function writeWorkflow(content: unknown, name = `w${files++}.json`): Promise<string> {
  const file = path.join(tmp, name);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return file;
}

/** The error loadWorkflow gives for this content, and the file it was written to. */
async function loadError(content: unknown): Promise<{ error: SlipstreamError; file: string }> {
  const file = await writeWorkflow(content);
  try {
    await loadWorkflow(file);
  } catch (e) {
    expect(e).toBeInstanceOf(SlipstreamError);
    return { error: e as SlipstreamError, file };
  }
  throw new Error(`expected ${file} to be refused`);
}

const MINIMAL = { name: 'w', model: 'm', prompts: ['red circle right'], accelerate: {} };

describe('loadWorkflow', () => {
  it('parses workflows/default.json with the plugin defaults filled in', async () => {
    const loaded = await loadWorkflow(DEFAULT);
    const w = loaded.workflow;
    expect(w.name).toBe('default');
    expect(w.prompts).toEqual(['red circle right', 'blue square rotate', 'yellow triangle down']);
    expect(w.sampler).toEqual({ solver: 'euler', steps: 30, cfg: 5, shift: 1 });
    expect(w.video).toEqual({ frames: 8, size: 16 });
    expect(w.output).toEqual({ dir: 'out', gifScale: 4, fps: 6 });
    expect(w.accelerate).toStrictEqual({
      'mixed-precision': { route: 'dmpq', hadamardBlock: 128, checkpoint: 'nvfp4/model.safetensors' },
      'delta-cache': { threshold: 0.25, maxSkips: 3, purify: true, warmupSteps: 4, finalSteps: 1, outlierRatio: 25, purifyPrecision: 'bf16' },
      'sparse-attention': { topk: 0.5, topp: 0, startPercent: 0.2, endPercent: 1, denseBlocks: 1, precision: 'int8' },
    });
  });

  it('resolves model and profile against the workflow file, not the current directory', async () => {
    const loaded = await loadWorkflow(DEFAULT);
    expect(loaded.file).toBe(DEFAULT);
    expect(loaded.modelDir).toBe(path.join(REPO, 'models', 'wan-mini'));
    expect(loaded.profileFile).toBe(path.join(REPO, 'models', 'wan-mini', 'profile.json'));
    // The same file named relative to the current directory resolves the same way.
    const relative = await loadWorkflow(path.relative(process.cwd(), DEFAULT));
    expect(relative.modelDir).toBe(loaded.modelDir);
    expect(relative.profileFile).toBe(loaded.profileFile);

    const file = await writeWorkflow({ ...MINIMAL, model: '../models/m', profile: 'cal/profile.json' }, 'deep/flows/w.json');
    const other = await loadWorkflow(file);
    expect(other.modelDir).toBe(path.join(tmp, 'deep', 'models', 'm'));
    expect(other.profileFile).toBe(path.join(tmp, 'deep', 'flows', 'cal', 'profile.json'));
    // Absolute paths stay as they are; no profile stays undefined.
    const abs = await loadWorkflow(await writeWorkflow({ ...MINIMAL, model: path.join(tmp, 'abs-model') }));
    expect(abs.modelDir).toBe(path.join(tmp, 'abs-model'));
    expect(abs.profileFile).toBeUndefined();
  });

  it('fills the documented defaults of a minimal workflow', async () => {
    const { workflow } = await loadWorkflow(await writeWorkflow(MINIMAL));
    expect(workflow.seed).toBe(0);
    expect(workflow.sampler).toEqual({ solver: 'euler', steps: 30, cfg: 5, shift: 1 });
    expect(workflow.video).toEqual({ frames: 8, size: 16 });
    expect(workflow.output).toEqual({ dir: 'out', gifScale: 4, fps: 6 });
    expect(workflow.accelerate).toStrictEqual({});
  });

  it('refuses an unknown solver, naming the field, the value and the solvers there are', async () => {
    const { error, file } = await loadError({ ...MINIMAL, sampler: { solver: 'ddim' } });
    expect(error.code).toBe('SLIP_E_SCHEMA');
    expect(error.message).toBe(`${file}: sampler.solver: expected one of "euler", "dpmpp-2m", "unipc", got "ddim"`);
  });

  it('refuses an unknown key inside a plugin section, by its full path', async () => {
    const { error, file } = await loadError({ ...MINIMAL, accelerate: { 'delta-cache': { threshold: 0.05, tau: 0.05 } } });
    expect(error.code).toBe('SLIP_E_SCHEMA');
    expect(error.message).toBe(`${file}: accelerate.delta-cache.tau: unknown key (not allowed here)`);
    // And an unknown plugin id.
    const other = await loadError({ ...MINIMAL, accelerate: { teacache: { threshold: 0.1 } } });
    expect(other.error.message).toBe(`${other.file}: accelerate.teacache: unknown key (not allowed here)`);
  });

  it('refuses out-of-range plugin parameters, naming the bound and the value', async () => {
    const a = await loadError({ ...MINIMAL, accelerate: { 'delta-cache': { maxSkips: 20 } } });
    expect(a.error.message).toMatch(new RegExp(`^${escape(a.file)}: accelerate\\.delta-cache\\.maxSkips: expected .*<= 16, got 20$`));
    const b = await loadError({ ...MINIMAL, accelerate: { 'reference-caches': { method: 'pab', threshold: 0.1 } } });
    expect(b.error.message).toBe(
      `${b.file}: accelerate.reference-caches.method: expected one of "teacache", "first-block-cache", "magcache", "easycache", got "pab"`,
    );
    const c = await loadError({ ...MINIMAL, accelerate: { 'mixed-precision': { route: 'fp8' } } });
    expect(c.error.message).toBe(`${c.file}: accelerate.mixed-precision.route: expected one of "dmpq", "int8", "nvfp4", "bf16", "full", got "fp8"`);
    const d = await loadError({ ...MINIMAL, accelerate: { 'reference-caches': { method: 'magcache', threshold: 0 } } });
    expect(d.error.message).toMatch(new RegExp(`^${escape(d.file)}: accelerate\\.reference-caches\\.threshold: expected number > 0, got 0$`));
  });

  it('refuses delta-cache and reference-caches together', async () => {
    const { error, file } = await loadError({
      ...MINIMAL,
      accelerate: { 'delta-cache': {}, 'reference-caches': { method: 'teacache', threshold: 0.1 } },
    });
    expect(error.code).toBe('SLIP_E_SCHEMA');
    expect(error.message).toBe(`${file}: accelerate: expected at most one of "delta-cache" and "reference-caches": both decide which blocks to skip`);
    // Either alone (with mixed precision) is fine.
    await expect(loadWorkflow(await writeWorkflow({ ...MINIMAL, accelerate: { 'mixed-precision': {}, 'delta-cache': {} } }))).resolves.toBeDefined();
    await expect(
      loadWorkflow(await writeWorkflow({ ...MINIMAL, accelerate: { 'mixed-precision': {}, 'reference-caches': { method: 'easycache', threshold: 0.1 } } })),
    ).resolves.toBeDefined();
  });

  it('refuses an odd video.size and one out of range', async () => {
    const odd = await loadError({ ...MINIMAL, video: { size: 15 } });
    expect(odd.error.code).toBe('SLIP_E_SCHEMA');
    expect(odd.error.message).toMatch(new RegExp(`^${escape(odd.file)}: video\\.size: expected a multiple of 2, got 15`));
    const big = await loadError({ ...MINIMAL, video: { size: 130 } });
    expect(big.error.message).toMatch(new RegExp(`^${escape(big.file)}: video\\.size: expected .*<= 128, got 130$`));
    await expect(loadWorkflow(await writeWorkflow({ ...MINIMAL, video: { size: 2 } }))).resolves.toBeDefined();
  });

  it('reports every problem, one line each', async () => {
    const { error, file } = await loadError({ name: 'has space', model: '', prompts: [], accelerate: {}, sampler: { steps: 0 } });
    const lines = error.message.split('\n');
    expect(lines).toHaveLength(4);
    for (const line of lines) expect(line.startsWith(`${file}: `)).toBe(true);
    expect(lines.map((l) => l.slice(file.length + 2).split(':')[0]).sort()).toEqual(['model', 'name', 'prompts', 'sampler.steps']);
    expect(error.message).toContain('name: expected a string matching');
    expect(error.message).toContain('got "has space"');
  });

  it('gives line and column of malformed JSON', async () => {
    const { error, file } = await loadError('{\n  "name": "x",\n  "model": "m"\n  "prompts": []\n}\n');
    expect(error.code).toBe('SLIP_E_SCHEMA');
    // The missing comma: the next property starts at line 4, column 3.
    expect(error.message).toMatch(new RegExp(`^${escape(file)}: invalid JSON at line 4, column 3: `));
  });

  it('says SLIP_E_IO for a missing file', async () => {
    await expect(loadWorkflow(path.join(tmp, 'missing.json'))).rejects.toMatchObject({ code: 'SLIP_E_IO' });
  });

  it('keys accelerate by the plugin manifests\' ids, each value exactly that manifest\'s params', () => {
    const manifests = [mixedPrecisionManifest, deltaCacheManifest, referenceCachesManifest, sparseAttentionManifest];
    const accelerate = workflowSchema.schema.shape.accelerate;
    expect(Object.keys(accelerate.shape).sort()).toEqual(manifests.map((m) => m.id).sort());
    for (const m of manifests) {
      const field = accelerate.shape[m.id as keyof typeof accelerate.shape];
      expect(field.unwrap()).toBe(m.params);
    }
    // The JSON Schema editors get carries the same keys.
    const json = workflowSchema.jsonSchema() as { properties: { accelerate: { properties: Record<string, unknown> } } };
    expect(Object.keys(json.properties.accelerate.properties).sort()).toEqual(manifests.map((m) => m.id).sort());
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const PROFILE: Profile = profileSchema.parse({
  format: 'slipstream-profile/1',
  model: 'wan-mini',
  sampler: { solver: 'euler', steps: 10, shift: 1, cfg: 5 },
  prompts: ['red circle right'],
  dmpq: { alpha: 2, beta: 0.01, r2: 0.9, targetError: 0.05, gammaThreshold: 0.02, samples: 120 },
  teacache: { coefficients: [1, -2, 3, 0.5, 0.01] },
  magcache: { ratios: [1, 0.99, 0.98, 0.97, 0.96, 0.95, 0.94, 0.93, 0.92] },
});

/** The accelerate section as loadWorkflow would give it (defaults applied). */
function section(accelerate: Record<string, unknown>) {
  return workflowSchema.parse({ ...MINIMAL, accelerate }).accelerate;
}

describe('buildAccelerators', () => {
  it('turns nothing on for an empty section', () => {
    expect(buildAccelerators(section({}), undefined, 10)).toEqual({});
    expect(acceleratedWeights(section({}), '/m')).toEqual({ weights: 'fp32' });
  });

  it('refuses route dmpq with neither a profile nor a gammaThreshold, naming the profile', () => {
    const e = thrown(() => buildAccelerators(section({ 'mixed-precision': {} }), undefined, 10));
    expect(e.code).toBe('SLIP_E_INVALID_ARGUMENT');
    expect(e.message).toContain('calibration profile ("profile" in the workflow');
    expect(e.message).toContain('mixed-precision route "dmpq" without a gammaThreshold');
    expect(e.message).toContain('got none');
  });

  it('takes the Γ threshold from params first, then from the profile; fixed routes need neither', () => {
    const own = buildAccelerators(section({ 'mixed-precision': { gammaThreshold: 0.3 } }), undefined, 10).precision;
    expect(own).toBeInstanceOf(MixedPrecision);
    expect((own as MixedPrecision).gammaThreshold).toBe(0.3);
    expect((buildAccelerators(section({ 'mixed-precision': { gammaThreshold: 0.3 } }), PROFILE, 10).precision as MixedPrecision).gammaThreshold).toBe(0.3);
    expect((buildAccelerators(section({ 'mixed-precision': {} }), PROFILE, 10).precision as MixedPrecision).gammaThreshold).toBe(0.02);
    const int8 = buildAccelerators(section({ 'mixed-precision': { route: 'int8' } }), undefined, 10).precision;
    expect(int8).toBeInstanceOf(MixedPrecision);
    expect(int8!.choose(0, { step: 0, steps: 10, sigma: 1 })).toEqual({ precision: 'int8' });
    expect(acceleratedWeights(section({ 'mixed-precision': { hadamardBlock: 64 } }), '/m')).toEqual({ weights: 'nvfp4', hadamardBlock: 64 });
    // A checkpoint brings its own rotation; its path is the model folder's.
    expect(acceleratedWeights(section({ 'mixed-precision': { checkpoint: 'nvfp4/model.safetensors' } }), '/m')).toEqual({
      weights: 'nvfp4',
      nvfp4Checkpoint: '/m/nvfp4/model.safetensors',
    });
  });

  it('refuses teacache and magcache without a profile, naming what they need from it', () => {
    const tea = thrown(() => buildAccelerators(section({ 'reference-caches': { method: 'teacache', threshold: 0.1 } }), undefined, 10));
    expect(tea.code).toBe('SLIP_E_INVALID_ARGUMENT');
    expect(tea.message).toContain('calibration profile');
    expect(tea.message).toContain('teacache (its rescaling polynomial)');
    const mag = thrown(() => buildAccelerators(section({ 'reference-caches': { method: 'magcache', threshold: 0.1 } }), undefined, 10));
    expect(mag.code).toBe('SLIP_E_INVALID_ARGUMENT');
    expect(mag.message).toContain('calibration profile');
    expect(mag.message).toContain('magcache (its magnitude ratios)');
  });

  it('builds the policy of each method, with the profile\'s fit where one is needed', () => {
    const rc = (method: string) => ({ 'reference-caches': { method, threshold: 0.1 } });
    const tea = buildAccelerators(section(rc('teacache')), PROFILE, 10);
    expect(tea.skip).toBeInstanceOf(TeaCache);
    expect((tea.skip as TeaCache).coefficients).toEqual([1, -2, 3, 0.5, 0.01]);
    expect(tea.output).toBeUndefined();
    const mag = buildAccelerators(section(rc('magcache')), PROFILE, 10);
    expect(mag.skip).toBeInstanceOf(MagCache);
    expect((mag.skip as MagCache).ratios).toEqual(PROFILE.magcache!.ratios);
    const { teacache: _, ...dmpqOnly } = PROFILE;
    expect(() => buildAccelerators(section(rc('teacache')), dmpqOnly, 10)).toThrow(/expected the calibration profile to have teacache/);
    // Neither of these needs a profile.
    expect(buildAccelerators(section(rc('first-block-cache')), undefined, 10).skip).toBeInstanceOf(FirstBlockCache);
    const easy = buildAccelerators(section(rc('easycache')), undefined, 10);
    expect(easy.output).toBeInstanceOf(EasyCache);
    expect(easy.skip).toBeUndefined();
  });

  it('passes the run\'s step count to MagCache (its retention phase is 20% of it)', () => {
    // 10 steps: steps 0 and 1 are kept; γ ≈ 1 so step 2 may skip. With 20 steps, 0-3 are kept.
    const ratios = { ...PROFILE, magcache: { ratios: new Array<number>(19).fill(1) } };
    const at = (steps: number, step: number) => {
      const p = buildAccelerators(section({ 'reference-caches': { method: 'magcache', threshold: 0.1 } }), ratios, steps).skip!;
      for (let t = 0; t <= step; t++) {
        p.beginCall({ step: t, steps, sigma: 1 }, { timeEmbedding: () => new Float32Array(0), tokens: () => new Float32Array(0) });
        if (t < step) p.endCall?.(0);
      }
      return p.skip(0);
    };
    expect(at(10, 1)).toBe(false);
    expect(at(10, 2)).toBe(true);
    expect(at(20, 3)).toBe(false);
    expect(at(20, 4)).toBe(true);
  });

  it('builds TDC with PDR\'s outlier ratio only when purify is on, together with mixed precision', () => {
    const on = buildAccelerators(section({ 'mixed-precision': {}, 'delta-cache': { outlierRatio: 30 } }), PROFILE, 10);
    expect(on.skip).toBeInstanceOf(TemporalDeltaCache);
    expect(on.precision).toBeInstanceOf(MixedPrecision);
    expect(on.purify).toStrictEqual({ outlierRatio: 30, precision: 'bf16' });
    expect((on.skip as TemporalDeltaCache).params).toStrictEqual({
      threshold: 0.06,
      maxSkips: 2,
      warmupSteps: 4,
      finalSteps: 1,
      purify: true,
      outlierRatio: 30,
      purifyPrecision: 'bf16',
    });
    const off = buildAccelerators(section({ 'delta-cache': { purify: false } }), undefined, 10);
    expect(off.skip).toBeInstanceOf(TemporalDeltaCache);
    expect(off.purify).toBeUndefined();
    expect(off.precision).toBeUndefined();
  });
});
