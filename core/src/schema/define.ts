import { z } from 'zod';
import { SlipstreamError } from '../errors/index.js';
import { formatIssues } from './format-issues.js';
import { schemaRegistry, type SchemaRegistry } from './registry.js';

/** One config format: its zod schema plus validation and JSON Schema built from it. */
export interface SchemaDefinition<S extends z.ZodType = z.ZodType> {
  readonly name: string;
  readonly description: string | undefined;
  readonly schema: S;
  /** Validates and returns the parsed value (defaults applied); throws SLIP_E_SCHEMA. */
  parse(value: unknown, where?: string): z.output<S>;
  /** The problems `parse` would report, one line each; [] when the value is valid. */
  check(value: unknown, where?: string): string[];
  /** JSON Schema (draft 2020-12) of the accepted input, for editors. */
  jsonSchema(): Record<string, unknown>;
}

/** The parsed (output) type of a definition: `type Workflow = SchemaType<typeof workflowSchema>`. */
export type SchemaType<D extends SchemaDefinition> = z.output<D['schema']>;
/** What a user may write (fields with defaults are optional). */
export type SchemaInput<D extends SchemaDefinition> = z.input<D['schema']>;

export interface DefineOptions {
  description?: string;
  /** Registry to add the definition to; null for none. Defaults to the shared registry. */
  registry?: SchemaRegistry | null;
}

const NAME = /^[a-z0-9][a-z0-9._-]*$/;

type Def = { type: string } & Record<string, unknown>;

function defOf(t: unknown): Def {
  return (t as { _zod: { def: Def } })._zod.def;
}

/**
 * Every object must reject unknown keys: a misspelt option that is silently dropped is the
 * commonest config bug. Zod has no global strict mode, so definitions are checked instead.
 */
function assertStrict(name: string, root: z.ZodType): void {
  const seen = new Set<unknown>();
  const walk = (t: unknown, path: string): void => {
    if (t === undefined || seen.has(t)) return;
    seen.add(t);
    const def = defOf(t);
    const at = path === '' ? 'the root' : path;
    switch (def.type) {
      case 'object': {
        const catchall = def.catchall === undefined ? undefined : defOf(def.catchall).type;
        if (catchall === undefined || catchall === 'unknown' || catchall === 'any') {
          throw new SlipstreamError(
            'SLIP_E_SCHEMA',
            `schema "${name}": the object at ${at} accepts unknown keys; use z.strictObject so that misspelt keys are reported`,
          );
        }
        for (const [key, child] of Object.entries(def.shape as Record<string, unknown>)) walk(child, path === '' ? key : `${path}.${key}`);
        if (catchall !== 'never') walk(def.catchall, `${path}.*`);
        return;
      }
      case 'array':
        return walk(def.element, `${path}[]`);
      case 'record':
      case 'map':
        return walk(def.valueType, `${path}.*`);
      case 'set':
        return walk(def.valueType, `${path}[]`);
      case 'tuple':
        (def.items as unknown[]).forEach((item, i) => walk(item, `${path}[${i}]`));
        return walk(def.rest ?? undefined, `${path}[]`);
      case 'union':
        return (def.options as unknown[]).forEach((o) => walk(o, path));
      case 'intersection':
        walk(def.left, path);
        return walk(def.right, path);
      case 'pipe':
        walk(def.in, path);
        return walk(def.out, path);
      case 'lazy':
        return walk((def.getter as () => unknown)(), path);
      default:
        // Wrappers (optional, nullable, default, readonly, catch, ...) keep their inner type here.
        if (def.innerType !== undefined) walk(def.innerType, path);
    }
  };
  walk(root, '');
}

export function defineSchema<S extends z.ZodType>(name: string, schema: S, options: DefineOptions = {}): SchemaDefinition<S> {
  if (!NAME.test(name)) {
    throw new SlipstreamError('SLIP_E_SCHEMA', `expected a schema name of lower-case letters, digits, ".", "_" or "-", got ${JSON.stringify(name)}`);
  }
  assertStrict(name, schema);
  const description = options.description;
  const check = (value: unknown, where = name): string[] => {
    const result = schema.safeParse(value);
    return result.success ? [] : formatIssues(result.error.issues, value, where);
  };
  const definition: SchemaDefinition<S> = Object.freeze({
    name,
    description,
    schema,
    parse(value: unknown, where = name): z.output<S> {
      const result = schema.safeParse(value);
      if (result.success) return result.data;
      throw new SlipstreamError('SLIP_E_SCHEMA', formatIssues(result.error.issues, value, where).join('\n'));
    },
    check,
    jsonSchema(): Record<string, unknown> {
      let json: Record<string, unknown>;
      try {
        // 'input': the file a user writes may leave out fields that have defaults.
        json = z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'throw' }) as Record<string, unknown>;
      } catch (e) {
        throw new SlipstreamError('SLIP_E_SCHEMA', `schema "${name}" has no JSON Schema form: ${(e as Error).message}`, { cause: e });
      }
      const { $schema, ...rest } = json;
      return { $schema, title: name, ...(description !== undefined ? { description } : {}), ...rest };
    },
  });
  const registry = options.registry === undefined ? schemaRegistry : options.registry;
  registry?.add(definition);
  return definition;
}
