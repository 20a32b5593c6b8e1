import type { CommandSpec } from '../command.js';
import { infoCommand } from './info.js';
import { inspectCommand } from './inspect.js';
import { quantizeCommand } from './quantize.js';

/** Every command, in the order `slipstream help` lists them. */
export const COMMANDS: readonly CommandSpec[] = [quantizeCommand, inspectCommand, infoCommand].map((c) => c as unknown as CommandSpec);
