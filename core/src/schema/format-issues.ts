import type { z } from 'zod';

type Issue = z.core.$ZodIssue;
type Key = PropertyKey;

const PLAIN_KEY = /^[A-Za-z_$][\w$-]*$/;

/** Writes a path the way a user would point into the JSON: steps[2].params.topk. */
export function formatPath(path: readonly Key[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (typeof key === 'string' && PLAIN_KEY.test(key)) out += out === '' ? key : `.${key}`;
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out;
}

/** A short description of a JSON value for "got ..." clauses. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') {
    const text = JSON.stringify(value);
    return text.length > 42 ? `${text.slice(0, 39)}..."` : text;
  }
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (Array.isArray(value)) return `an array of ${value.length} item${value.length === 1 ? '' : 's'}`;
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

function literal(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  if (v === undefined || typeof v === 'symbol') return String(v);
  return JSON.stringify(v);
}

function valueAt(root: unknown, path: readonly Key[]): { found: boolean; value: unknown } {
  let v: unknown = root;
  for (const key of path) {
    if (typeof v !== 'object' || v === null || !Object.prototype.hasOwnProperty.call(v, key)) return { found: false, value: undefined };
    v = (v as Record<Key, unknown>)[key];
  }
  return { found: true, value: v };
}

const NOUNS: Record<string, string> = { int: 'integer', number: 'number', bigint: 'integer', nan: 'NaN', date: 'date' };

function noun(expected: string): string {
  return NOUNS[expected] ?? expected;
}

function sizeWord(origin: string, n: number | bigint): string {
  const word = origin === 'string' ? 'character' : origin === 'file' ? 'byte' : 'item';
  return Number(n) === 1 ? word : `${word}s`;
}

function sizeOf(value: unknown): string {
  if (typeof value === 'string' || Array.isArray(value)) return String(value.length);
  if (value instanceof Set || value instanceof Map) return String(value.size);
  return describeValue(value);
}

function bound(issue: Extract<Issue, { code: 'too_big' | 'too_small' }>, value: unknown): string {
  const big = issue.code === 'too_big';
  const limit = big ? issue.maximum : issue.minimum;
  if (issue.origin === 'number' || issue.origin === 'int' || issue.origin === 'bigint' || issue.origin === 'date') {
    const op = big ? (issue.inclusive ? '<=' : '<') : issue.inclusive ? '>=' : '>';
    const shown = issue.origin === 'date' && limit !== undefined ? new Date(Number(limit)).toISOString() : String(limit);
    return `expected ${noun(issue.origin)} ${op} ${shown}, got ${describeValue(value)}`;
  }
  if (issue.exact) return `expected exactly ${limit} ${sizeWord(issue.origin, limit)}, got ${sizeOf(value)}`;
  const n = big ? (issue.inclusive ? limit : Number(limit) - 1) : issue.inclusive ? limit : Number(limit) + 1;
  return `expected ${big ? 'at most' : 'at least'} ${n} ${sizeWord(issue.origin, n)}, got ${sizeOf(value)}`;
}

function format(issue: Extract<Issue, { code: 'invalid_format' }>, value: unknown): string {
  const got = `got ${describeValue(value)}`;
  const i = issue as Issue & Record<string, unknown>;
  switch (issue.format) {
    case 'regex':
      return `expected a string matching ${issue.pattern}, ${got}`;
    case 'starts_with':
      return `expected a string starting with ${JSON.stringify(i.prefix)}, ${got}`;
    case 'ends_with':
      return `expected a string ending with ${JSON.stringify(i.suffix)}, ${got}`;
    case 'includes':
      return `expected a string containing ${JSON.stringify(i.includes)}, ${got}`;
    default:
      return `expected a valid ${issue.format}, ${got}`;
  }
}

export interface FormattedIssue {
  path: string;
  message: string;
}

/**
 * Chooses what to say about a union that matched no variant. When every variant failed on
 * the same literal (a "kind" field, say), that field is the mistake; otherwise the variant
 * with the fewest problems is the likely intent, and its problems are reported.
 */
function unionIssues(issue: Extract<Issue, { code: 'invalid_union' }>, root: unknown, base: readonly Key[]): FormattedIssue[] {
  const i = issue as Issue & { errors: Issue[][]; options?: unknown[]; inclusive?: boolean };
  const value = valueAt(root, base).value;
  if (i.errors.length === 0) {
    if (i.options !== undefined) {
      const list = i.options.map(literal).join(', ');
      return [{ path: formatPath(base), message: `expected one of ${list}, got ${describeValue(value)}` }];
    }
    return [{ path: formatPath(base), message: i.inclusive === false ? 'matches more than one allowed variant' : issue.message }];
  }
  const literalPaths = i.errors.map((errs) => errs.filter((e) => e.code === 'invalid_value' && e.path.length > 0).map((e) => formatPath(e.path)));
  const shared = literalPaths[0].find((p) => literalPaths.every((ps) => ps.includes(p)));
  if (shared !== undefined) {
    const hits = i.errors.flatMap((errs) => errs.filter((e) => e.code === 'invalid_value' && formatPath(e.path) === shared)) as Extract<Issue, { code: 'invalid_value' }>[];
    const path = [...base, ...hits[0].path];
    const values = hits.flatMap((h) => h.values).map(literal);
    return [{ path: formatPath(path), message: `expected one of ${[...new Set(values)].join(', ')}, got ${describeValue(valueAt(root, path).value)}` }];
  }
  const score = (errs: Issue[]) => errs.length + 100 * errs.filter((e) => e.code === 'invalid_value' || (e.code === 'invalid_type' && e.path.length === 0)).length;
  const best = i.errors.reduce((a, b) => (score(b) < score(a) ? b : a));
  return best.flatMap((e) => formatIssue(e, root, base));
}

/** Turns one zod issue into messages with full paths; `root` is the parsed input. */
export function formatIssue(issue: Issue, root: unknown, base: readonly Key[] = []): FormattedIssue[] {
  const path = [...base, ...issue.path];
  const at = valueAt(root, path);
  const one = (message: string): FormattedIssue[] => [{ path: formatPath(path), message }];
  switch (issue.code) {
    case 'invalid_type':
      if (!at.found && issue.expected !== 'undefined') return one(`required, but missing (expected ${noun(issue.expected)})`);
      return one(`expected ${noun(issue.expected)}, got ${describeValue(at.value)}`);
    case 'too_big':
    case 'too_small':
      return one(bound(issue, at.value));
    case 'invalid_value': {
      const list = issue.values.map(literal);
      return one(`expected ${list.length === 1 ? list[0] : `one of ${list.join(', ')}`}, got ${describeValue(at.value)}`);
    }
    case 'unrecognized_keys':
      return issue.keys.map((key) => ({ path: formatPath([...path, key]), message: 'unknown key (not allowed here)' }));
    case 'invalid_union':
      return unionIssues(issue, root, path);
    case 'invalid_key':
      return issue.issues.flatMap((inner) => formatIssue(inner, String(path[path.length - 1]), [])).map((f) => ({
        path: formatPath(path),
        message: `invalid key: ${f.message}`,
      }));
    case 'invalid_element':
      return issue.issues.flatMap((inner) => formatIssue(inner, root, path));
    case 'invalid_format':
      return one(format(issue, at.value));
    case 'not_multiple_of':
      return one(`expected a multiple of ${issue.divisor}, got ${describeValue(at.value)}`);
    default:
      return one(issue.message);
  }
}

/** One line per problem: "<where>: <path>: <message>" (the path is left out at the root). */
export function formatIssues(issues: readonly Issue[], root: unknown, where: string): string[] {
  return issues
    .flatMap((issue) => formatIssue(issue, root))
    .map((f) => (f.path === '' ? `${where}: ${f.message}` : `${where}: ${f.path}: ${f.message}`));
}
