/** `slipstream <command>`: dispatch, help, and one way of reporting errors. */
import { SlipstreamError } from '../core/src/errors/index.js';
import { type CliIO, type CommandSpec, helpText, parseCommandArgs } from './command.js';
import { COMMANDS } from './commands/index.js';

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'slipstream — low-bit, sparse and cached acceleration for diffusion and LLM runtimes',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `slipstream help <command>` for its options.',
    '',
  ].join('\n');
}

export async function runCli(argv: string[], io: CliIO = { out: process.stdout, err: process.stderr }): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    const target = rest[0] ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    io.out.write(target ? helpText(target as CommandSpec) : overview());
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name) as CommandSpec | undefined;
  if (!command) {
    io.err.write(`slipstream: unknown command ${JSON.stringify(name)}; commands: ${COMMANDS.map((c) => c.name).join(', ')}\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out.write(helpText(command));
    return 0;
  }
  try {
    return await command.run(parseCommandArgs(command, rest), io);
  } catch (err) {
    if (err instanceof SlipstreamError) {
      io.err.write(`slipstream ${name}: ${err.message} [${err.code}]\n`);
      return err.code === 'SLIP_E_USAGE' ? 2 : 1;
    }
    throw err;
  }
}
