import type { CommandSpec } from '../command.js';
import { infoCommand } from './info.js';
import { inspectCommand } from './inspect.js';

/** Every command, in the order `slipstream help` lists them. */
export const COMMANDS: readonly CommandSpec[] = [infoCommand, inspectCommand].map((c) => c as unknown as CommandSpec);
