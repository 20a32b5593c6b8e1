import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { SlipstreamError } from '../errors/index.js';
import { defineSchema, type SchemaInput, type SchemaType } from './define.js';
import { formatPath } from './format-issues.js';
import { parseJsonFile } from './json-file.js';
import { SchemaRegistry, renderJsonSchemas, staleJsonSchemas, writeJsonSchemas } from './registry.js';

const sparse = z.strictObject({ kind: z.literal('sparse'), topk: z.number().gt(0).max(1), warmup: z.number().int().min(0).default(2) });
const cache = z.strictObject({ kind: z.literal('cache'), threshold: z.number().nonnegative() });
const step = z.strictObject({
  name: z.string().min(1),
  params: z.discriminatedUnion('kind', [sparse, cache]),
});

function workflowSchema(registry: SchemaRegistry | null = null) {
  return defineSchema(
    'workflow',
    z.strictObject({
      version: z.literal(1),
      model: z.enum(['wan-mini', 'qwen3-mini']),
      steps: z.array(step).min(1),
      tags: z.record(z.string().regex(/^[a-z]+$/), z.string()).optional(),
      seed: z.number().int().optional(),
    }),
    { description: 'An embedded-runtime workflow.', registry },
  );
}

const good = {
  version: 1,
  model: 'wan-mini',
  steps: [
    { name: 'a', params: { kind: 'sparse', topk: 0.5 } },
    { name: 'b', params: { kind: 'cache', threshold: 0.1 } },
    { name: 'c', params: { kind: 'sparse', topk: 0.25, warmup: 0 } },
  ],
};

function problems(value: unknown): string[] {
  return workflowSchema().check(value, 'workflow.json');
}

describe('defineSchema', () => {
  it('parses valid input and applies defaults, with inferred types', () => {
    const wf = workflowSchema();
    const parsed = wf.parse(good);
    expect(parsed.steps[0].params).toEqual({ kind: 'sparse', topk: 0.5, warmup: 2 });
    expectTypeOf(parsed.model).toEqualTypeOf<'wan-mini' | 'qwen3-mini'>();
    type Out = SchemaType<typeof wf>;
    type In = SchemaInput<typeof wf>;
    expectTypeOf<Out['seed']>().toEqualTypeOf<number | undefined>();
    expectTypeOf<In['version']>().toEqualTypeOf<1>();
  });

  it('reports each problem with its exact JSON path', () => {
    const bad = structuredClone(good) as any;
    bad.steps[2].params.topk = 1.5;
    expect(problems(bad)).toEqual(['workflow.json: steps[2].params.topk: expected number <= 1, got 1.5']);

    bad.steps[0].params.warmup = -1;
    bad.steps[1].name = '';
    bad.model = 'gpt';
    bad.seed = 0.5;
    expect(problems(bad)).toEqual([
      'workflow.json: model: expected one of "wan-mini", "qwen3-mini", got "gpt"',
      'workflow.json: steps[0].params.warmup: expected number >= 0, got -1',
      'workflow.json: steps[1].name: expected at least 1 character, got 0',
      'workflow.json: steps[2].params.topk: expected number <= 1, got 1.5',
      'workflow.json: seed: expected integer, got 0.5',
    ]);
  });

  it('rejects unknown keys, naming each', () => {
    const bad = structuredClone(good) as any;
    bad.steps[0].params.topkk = 1;
    bad.extra = true;
    expect(problems(bad)).toEqual([
      'workflow.json: steps[0].params.topkk: unknown key (not allowed here)',
      'workflow.json: extra: unknown key (not allowed here)',
    ]);
  });

  it('explains missing fields, wrong types and bad discriminators', () => {
    expect(problems({ ...good, version: undefined })).toEqual(['workflow.json: version: expected 1, got nothing']);
    const { model: _m, ...noModel } = good;
    expect(problems(noModel)).toEqual(['workflow.json: model: expected one of "wan-mini", "qwen3-mini", got nothing']);
    expect(problems({ ...good, steps: 'all' })).toEqual(['workflow.json: steps: expected array, got "all"']);
    expect(problems({ ...good, steps: [] })).toEqual(['workflow.json: steps: expected at least 1 item, got 0']);
    expect(problems({ ...good, steps: [{ name: 'x', params: { kind: 'dense' } }] })).toEqual([
      'workflow.json: steps[0].params.kind: expected one of "sparse", "cache", got "dense"',
    ]);
    expect(problems({ ...good, steps: [{ params: { kind: 'cache', threshold: 1 } }] })).toEqual([
      'workflow.json: steps[0].name: required, but missing (expected string)',
    ]);
    expect(problems([1])).toEqual(['workflow.json: expected object, got an array of 1 item']);
    expect(problems({ ...good, tags: { Bad: 'x' } })).toEqual(['workflow.json: tags.Bad: invalid key: expected a string matching /^[a-z]+$/, got "Bad"']);
  });

  it('reports plain unions by the variant that fits best', () => {
    const s = defineSchema('u', z.strictObject({ v: z.union([z.strictObject({ a: z.number() }), z.strictObject({ b: z.string(), c: z.number() })]) }), { registry: null });
    expect(s.check({ v: { b: 'x', c: 'y' } }, 'f')).toEqual(['f: v.c: expected number, got "y"']);
    const lit = defineSchema('lit', z.strictObject({ v: z.union([z.strictObject({ k: z.literal('a') }), z.strictObject({ k: z.literal('b'), n: z.number() })]) }), { registry: null });
    expect(lit.check({ v: { k: 'z' } }, 'f')).toEqual(['f: v.k: expected one of "a", "b", got "z"']);
  });

  it('throws SLIP_E_SCHEMA with all lines in the message', () => {
    try {
      workflowSchema().parse({ ...good, version: 2, model: 1 }, 'w.json');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(SlipstreamError);
      expect((e as SlipstreamError).code).toBe('SLIP_E_SCHEMA');
      expect((e as Error).message).toBe('w.json: version: expected 1, got 2\nw.json: model: expected one of "wan-mini", "qwen3-mini", got 1');
    }
  });

  it('refuses objects that would drop unknown keys', () => {
    expect(() => defineSchema('loose', z.object({ a: z.number() }), { registry: null })).toThrow(
      'schema "loose": the object at the root accepts unknown keys; use z.strictObject so that misspelt keys are reported',
    );
    const nested = z.strictObject({ steps: z.array(z.strictObject({ p: z.looseObject({}).optional() })) });
    expect(() => defineSchema('nested', nested, { registry: null })).toThrow(/the object at steps\[\]\.p accepts unknown keys/);
    const tree: z.ZodType = z.lazy(() => z.strictObject({ kids: z.array(tree) }));
    expect(() => defineSchema('tree', tree, { registry: null })).not.toThrow();
    expect(() => defineSchema('Bad Name', z.string(), { registry: null })).toThrow(/schema name/);
  });

  it('formats awkward keys in paths', () => {
    expect(formatPath(['steps', 2, 'sage-attention', 'a b', 'x'])).toBe('steps[2].sage-attention["a b"].x');
    expect(formatPath([])).toBe('');
  });
});

describe('JSON Schema output', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'slip-schema-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('describes the input, strict, with title and description', () => {
    const js = workflowSchema().jsonSchema() as any;
    expect(js.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(js.title).toBe('workflow');
    expect(js.description).toBe('An embedded-runtime workflow.');
    expect(js.additionalProperties).toBe(false);
    const variant = js.properties.steps.items.properties.params.oneOf ?? js.properties.steps.items.properties.params.anyOf;
    expect(variant[0].required).toEqual(['kind', 'topk']); // warmup has a default, so optional
    expect(variant[0].properties.topk).toMatchObject({ exclusiveMinimum: 0, maximum: 1 });
  });

  it('writes one file per registered schema and detects stale ones', async () => {
    const registry = new SchemaRegistry();
    workflowSchema(registry);
    defineSchema('sidecar.config', z.strictObject({ port: z.number().int().default(8000) }), { registry });
    expect(() => workflowSchema(registry)).toThrow(/already registered/);

    expect(await staleJsonSchemas(dir, registry)).toEqual(['sidecar.config.schema.json', 'workflow.schema.json']);
    const paths = await writeJsonSchemas(dir, registry);
    expect(paths.map((p) => p.slice(dir.length + 1))).toEqual(['sidecar.config.schema.json', 'workflow.schema.json']);
    expect((await readdir(dir)).sort()).toEqual(['sidecar.config.schema.json', 'workflow.schema.json']);
    expect(JSON.parse(await readFile(paths[0], 'utf8')).properties.port.default).toBe(8000);
    expect(await staleJsonSchemas(dir, registry)).toEqual([]);
    expect(renderJsonSchemas(registry).get('workflow.schema.json')).toBe(await readFile(paths[1], 'utf8'));

    await writeFile(paths[1], '{}\n');
    expect(await staleJsonSchemas(dir, registry)).toEqual(['workflow.schema.json']);
  });

  it('refuses schemas JSON Schema cannot express', () => {
    const s = defineSchema('bigint', z.strictObject({ n: z.bigint() }), { registry: null });
    expect(() => s.jsonSchema()).toThrow(/schema "bigint" has no JSON Schema form/);
  });

  it('parses JSON files with line and column on syntax errors', async () => {
    const wf = workflowSchema();
    const path = join(dir, 'wf.json');
    await writeFile(path, JSON.stringify(good));
    expect((await parseJsonFile(path, wf)).steps).toHaveLength(3);
    await writeFile(path, '{\n  "version": 1,\n}');
    await expect(parseJsonFile(path, wf)).rejects.toThrow(`${path}: invalid JSON at line 3, column 1: Expected double-quoted property name`);
    await writeFile(path, JSON.stringify({ ...good, version: 3 }));
    await expect(parseJsonFile(path, wf)).rejects.toThrow(`${path}: version: expected 1, got 3`);
    await expect(parseJsonFile(join(dir, 'none.json'), wf)).rejects.toMatchObject({ code: 'SLIP_E_IO' });
  });
});
