import type { CommandSpec } from '../command.js';
import { infoCommand } from './info.js';

/** Every command, in the order `slipstream help` lists them. */
export const COMMANDS: readonly CommandSpec[] = [infoCommand as unknown as CommandSpec];
