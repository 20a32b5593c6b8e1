/**
 * How a command is declared: one table of options gives the parser, the defaults and the help
 * text, so a flag is written once.
 */
import { parseArgs } from 'node:util';

import { SlipstreamError } from '../core/src/errors/index.js';

export interface OptionSpec {
  type: 'string' | 'boolean';
  description: string;
  /** The allowed values of a string option, listed in the help and checked before run(). */
  choices?: readonly string[];
  default?: string | boolean;
  short?: string;
  required?: boolean;
}

export interface CommandSpec<O extends Record<string, OptionSpec> = Record<string, OptionSpec>> {
  name: string;
  summary: string;
  /** Positional arguments, e.g. ['<in.safetensors>']. */
  positionals: readonly string[];
  options: O;
  run(args: ParsedArgs<O>, io: CliIO): Promise<number>;
}

export type ParsedArgs<O extends Record<string, OptionSpec>> = {
  positionals: string[];
  options: { [K in keyof O]: O[K]['type'] extends 'boolean' ? boolean : string | undefined };
};

export interface CliIO {
  out: NodeJS.WritableStream & { isTTY?: boolean };
  err: NodeJS.WritableStream & { isTTY?: boolean };
}

export function defineCommand<O extends Record<string, OptionSpec>>(spec: CommandSpec<O>): CommandSpec<O> {
  return spec;
}

function usageError(command: string, message: string): SlipstreamError {
  return new SlipstreamError('SLIP_E_USAGE', `${message} (see \`slipstream help ${command}\`)`);
}

export function parseCommandArgs<O extends Record<string, OptionSpec>>(spec: CommandSpec<O>, argv: string[]): ParsedArgs<O> {
  const config: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const [name, o] of Object.entries(spec.options)) config[name] = { type: o.type, ...(o.short ? { short: o.short } : {}) };
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: config, allowPositionals: true, strict: true });
  } catch (err) {
    throw usageError(spec.name, (err as Error).message.replace(/\. To specify.*$/s, ''));
  }
  const required = spec.positionals.filter((p) => p.startsWith('<'));
  if (parsed.positionals.length < required.length)
    throw usageError(spec.name, `expected ${required.join(' ')}, got ${parsed.positionals.length} argument(s)`);
  if (parsed.positionals.length > spec.positionals.length)
    throw usageError(spec.name, `unexpected argument ${JSON.stringify(parsed.positionals[spec.positionals.length])}`);
  const options: Record<string, unknown> = {};
  for (const [name, o] of Object.entries(spec.options)) {
    const v = (parsed.values as Record<string, unknown>)[name] ?? o.default;
    if (o.required && v === undefined) throw usageError(spec.name, `expected --${name}`);
    if (o.choices && v !== undefined && !o.choices.includes(v as string))
      throw usageError(spec.name, `expected one of ${o.choices.join('|')} for --${name}, got ${JSON.stringify(v)}`);
    options[name] = o.type === 'boolean' ? Boolean(v) : v;
  }
  return { positionals: parsed.positionals, options } as ParsedArgs<O>;
}

export function helpText(spec: CommandSpec): string {
  const lines = [`slipstream ${spec.name} ${spec.positionals.join(' ')}`.trimEnd(), '', `  ${spec.summary}`, ''];
  const entries = Object.entries(spec.options);
  if (entries.length) {
    lines.push('Options:');
    for (const [name, o] of entries) {
      const flag = `${o.short ? `-${o.short}, ` : ''}--${name}${o.type === 'string' ? ` <${o.choices ? o.choices.join('|') : 'value'}>` : ''}`;
      const extra = [o.required ? 'required' : '', o.default !== undefined ? `default ${String(o.default)}` : ''].filter(Boolean).join(', ');
      lines.push(`  ${flag.padEnd(38)} ${o.description}${extra ? ` (${extra})` : ''}`);
    }
  }
  return lines.join('\n') + '\n';
}
