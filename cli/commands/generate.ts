import { writeFileSync, renameSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

import { encodePng } from '../../adapters/embedded/png.js';
import { LatentCodec, PromptTable, WAN_MINI_DIR, generateVideo, stripRow } from '../../adapters/embedded/wan-mini.js';
import { SlipstreamError } from '../../core/src/errors/index.js';
import { WanModel, modelDenoiser } from '../../core/src/runtime/index.js';
import { defineCommand } from '../command.js';

function integer(value: string | undefined, name: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new SlipstreamError('SLIP_E_USAGE', `expected an integer >= ${min} for --${name}, got ${JSON.stringify(value)}`);
  return n;
}

export const generateCommand = defineCommand({
  name: 'generate',
  summary: 'Generates a video with the shipped wan-mini model on the native runtime and writes its frames as one PNG strip per prompt.',
  positionals: [],
  options: {
    prompt: { type: 'string', required: true, description: 'words "colour shape motion", e.g. "red circle right"; several prompts separated by ","' },
    out: { type: 'string', required: true, description: 'the PNG to write (one row per prompt)' },
    seed: { type: 'string', default: '0', description: 'noise seed' },
    steps: { type: 'string', default: '30', description: 'Euler steps' },
    cfg: { type: 'string', default: '5', description: 'classifier-free guidance scale' },
  },
  async run(args, io) {
    const prompts = args.options.prompt!.split(',').map((p) => p.trim());
    const seed = integer(args.options.seed, 'seed', 0);
    const steps = integer(args.options.steps, 'steps', 1);
    const cfg = Number(args.options.cfg);
    if (!Number.isFinite(cfg)) throw new SlipstreamError('SLIP_E_USAGE', `expected a number for --cfg, got ${JSON.stringify(args.options.cfg)}`);
    const [model, table, codec] = await Promise.all([WanModel.load(WAN_MINI_DIR), PromptTable.load(), LatentCodec.load()]);
    try {
      const rows = [];
      const start = performance.now();
      for (const prompt of prompts) {
        table.context(prompt); // validate every word before the slow part
        const { frames } = await generateVideo(modelDenoiser(model), model, table, codec, { prompt, seed, steps, cfg, frames: 8, size: 16 });
        rows.push(stripRow(frames, 64, 64));
      }
      // Rows of 64 pixels with a 2-pixel white gap between prompts.
      const width = rows[0]!.width;
      const height = 66 * rows.length - 2;
      const rgb = new Uint8Array(width * height * 3).fill(255);
      rows.forEach((r, i) => rgb.set(r.rgb, i * 66 * width * 3));
      const png = encodePng(width, height, rgb);
      const tmp = `${args.options.out}.tmp-${process.pid}`;
      writeFileSync(tmp, png);
      renameSync(tmp, args.options.out!);
      io.out.write(`${args.options.out}: ${prompts.length} video(s), 8 frames of 64×64, ${steps} steps, CFG ${cfg}, ${((performance.now() - start) / 1000).toFixed(1)} s\n`);
      return 0;
    } finally {
      model.free();
    }
  },
});
