import type { CommandSpec } from '../command.js';
import { attentionCommand } from './attention.js';
import { benchCommand } from './bench.js';
import { calibrateCommand } from './calibrate.js';
import { comfyCommand } from './comfy.js';
import { formatsCommand } from './formats.js';
import { generateCommand } from './generate.js';
import { infoCommand } from './info.js';
import { inspectCommand } from './inspect.js';
import { prepareCommand } from './prepare.js';
import { quantizeCommand } from './quantize.js';
import { runCommand } from './run.js';
import { serveCommand } from './serve.js';
import { sidecarCommand } from './sidecar.js';

/** Every command, in the order `slipstream help` lists them. */
export const COMMANDS: readonly CommandSpec[] = [runCommand, calibrateCommand, generateCommand, formatsCommand, quantizeCommand, prepareCommand, attentionCommand, inspectCommand, comfyCommand, serveCommand, sidecarCommand, benchCommand, infoCommand].map((c) => c as unknown as CommandSpec);
