/**
 * The shipped wan-mini model (models/wan-mini) on the native runtime: its prompt table (a fixed
 * embedding per word, no text encoder), its latent codec (one 48×16 matrix per 4×4 patch) and
 * frame strips. See models/wan-mini/README.md for what the model is.
 */
import path from 'node:path';

import { SlipstreamError } from '../../core/src/errors/index.js';
import { packageRoot } from '../../core/src/native/index.js';
import { sample, type Denoiser, type SolverName, type WanModel } from '../../core/src/runtime/index.js';
import { SafetensorsReader } from '../../core/src/safetensors/index.js';
import { Tensor } from '../../core/src/tensor/index.js';

export const WAN_MINI_DIR = path.join(packageRoot(), 'models', 'wan-mini');
const PATCH = 4;

export class PromptTable {
  private constructor(
    private readonly words: Float32Array,
    readonly vocab: string[],
    readonly width: number,
    readonly contextLength: number,
  ) {}

  static async load(file = path.join(WAN_MINI_DIR, 'prompts.safetensors')): Promise<PromptTable> {
    const r = await SafetensorsReader.open(file);
    try {
      const words = await r.tensor('words');
      const vocab = JSON.parse(r.metadata.vocab ?? '[]') as string[];
      return new PromptTable(words.toFloat32(), vocab, words.shape[1]!, Number(r.metadata.context_len ?? 8));
    } finally {
      await r.close();
    }
  }

  /** "red circle right" → [1, Lc, width]: one row per word, then zero rows; "" → all zeros. */
  context(prompt: string): Tensor<'F32'> {
    const out = Tensor.zeros('F32', [1, this.contextLength, this.width]);
    const words = prompt.trim().split(/\s+/).filter(Boolean);
    if (words.length > this.contextLength)
      throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected at most ${this.contextLength} words in the prompt, got ${words.length}`);
    words.forEach((word, i) => {
      const row = this.vocab.indexOf(word);
      if (row < 0) throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected prompt words from ${this.vocab.join(', ')}, got ${JSON.stringify(word)}`);
      out.data.set(this.words.subarray(row * this.width, (row + 1) * this.width), i * this.width);
    });
    return out;
  }
}

export class LatentCodec {
  private constructor(private readonly decoder: Float32Array, private readonly mean: Float32Array, readonly channels: number) {}

  static async load(file = path.join(WAN_MINI_DIR, 'codec.safetensors')): Promise<LatentCodec> {
    const r = await SafetensorsReader.open(file);
    try {
      const dec = await r.tensor('decoder'); // [48, 16]
      return new LatentCodec(dec.toFloat32(), (await r.tensor('mean')).toFloat32(), dec.shape[1]!);
    } finally {
      await r.close();
    }
  }

  /** Latents [C, F, h, w] of one video → frames [F][4h × 4w × 3] bytes (pixels in [-1, 1]). */
  decode(z: Float32Array, frames: number, h: number, w: number): Uint8Array[] {
    const c = this.channels;
    const width = w * PATCH;
    const out: Uint8Array[] = [];
    const patch = new Float32Array(3 * PATCH * PATCH);
    for (let f = 0; f < frames; f += 1) {
      const rgb = new Uint8Array(h * PATCH * width * 3);
      for (let y = 0; y < h; y += 1)
        for (let x = 0; x < w; x += 1) {
          // p = D z + mean, patch values ordered (channel, row, column) as codec.py's patchify.
          for (let i = 0; i < patch.length; i += 1) {
            let v = this.mean[i]!;
            for (let k = 0; k < c; k += 1) v += this.decoder[i * c + k]! * z[((k * frames + f) * h + y) * w + x]!;
            patch[i] = v;
          }
          for (let ch = 0; ch < 3; ch += 1)
            for (let py = 0; py < PATCH; py += 1)
              for (let px = 0; px < PATCH; px += 1) {
                const v = patch[(ch * PATCH + py) * PATCH + px]!;
                rgb[((y * PATCH + py) * width + x * PATCH + px) * 3 + ch] = Math.round(Math.min(1, Math.max(-1, v)) * 127.5 + 127.5);
              }
        }
      out.push(rgb);
    }
    return out;
  }
}

/** Frames side by side with a 2-pixel gap: one row of a strip image. */
export function stripRow(frames: Uint8Array[], width: number, height: number): { width: number; rgb: Uint8Array } {
  const gap = 2;
  const total = frames.length * width + (frames.length - 1) * gap;
  const rgb = new Uint8Array(total * height * 3).fill(255);
  frames.forEach((f, i) => {
    for (let y = 0; y < height; y += 1) rgb.set(f.subarray(y * width * 3, (y + 1) * width * 3), (y * total + i * (width + gap)) * 3);
  });
  return { width: total, rgb };
}

export interface GenerateOptions {
  prompt: string;
  seed: number;
  steps: number;
  cfg: number;
  frames: number;
  /** Latent height and width (pixels are 4× larger). */
  size: number;
  /** Default 'euler'; time shift default 1 (the schedule wan-mini was trained and sampled with). */
  solver?: SolverName;
  shift?: number;
  onStep?: (step: number, steps: number) => void;
}

/** One video for a prompt: its final latents and frames as RGB bytes. denoise: the model's
 *  forward (modelDenoiser) or an accelerated one (pipeline.ts). */
export async function generateVideo(
  denoise: Denoiser,
  model: WanModel,
  prompts: PromptTable,
  codec: LatentCodec,
  o: GenerateOptions,
): Promise<{ latents: Tensor<'F32'>; frames: Uint8Array[] }> {
  const z = await sample(denoise, model.config.inChannels, {
    context: prompts.context(o.prompt),
    seed: o.seed,
    steps: o.steps,
    cfg: o.cfg,
    shift: o.shift ?? 1,
    latent: [o.frames, o.size, o.size],
    ...(o.solver !== undefined ? { solver: o.solver } : {}),
    ...(o.onStep !== undefined ? { onStep: o.onStep } : {}),
  });
  return { latents: z, frames: codec.decode(z.data, o.frames, o.size, o.size) };
}
