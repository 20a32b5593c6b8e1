/**
 * Seeded Gaussian noise for the samplers: the same seed gives the same numbers on every platform
 * and Node version (pure 32-bit integer arithmetic, then float64). It is not torch's generator,
 * so latents differ from PyTorch's sample.py for the same seed; only determinism is promised.
 *
 * Generator: xoshiro128** (Blackman & Vigna), its 128-bit state filled by SplitMix32 from the
 * seed (a non-negative safe integer; the high and low 32-bit words are mixed in turn). Uniforms
 * u = (next() + 0.5) / 2^32 lie in (0, 1); normals come in pairs by Box-Muller,
 * r = sqrt(-2 ln u1): z0 = r cos(2 pi u2), z1 = r sin(2 pi u2), in order.
 */
import { invalidArgument } from '../errors/index.js';
import { Tensor } from '../tensor/index.js';

function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export class GaussianNoise {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  #spare: number | null = null;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw invalidArgument('seed', 'a non-negative safe integer', seed);
    const hi = Math.floor(seed / 2 ** 32) >>> 0;
    const st = { s: (seed >>> 0) ^ Math.imul(hi, 0x27d4eb2d) };
    this.#a = splitmix32(st);
    this.#b = splitmix32(st);
    this.#c = splitmix32(st);
    this.#d = splitmix32(st);
    if ((this.#a | this.#b | this.#c | this.#d) === 0) this.#a = 1;  // the one forbidden state
  }

  /** The next 32-bit output of xoshiro128**. */
  nextU32(): number {
    const r = Math.imul(rotl(Math.imul(this.#b, 5), 7), 9) >>> 0;
    const t = this.#b << 9;
    this.#c ^= this.#a;
    this.#d ^= this.#b;
    this.#b ^= this.#c;
    this.#a ^= this.#d;
    this.#c ^= t;
    this.#d = rotl(this.#d, 11);
    return r;
  }

  /** A uniform in (0, 1): (next() + 0.5) / 2^32. */
  uniform(): number {
    return (this.nextU32() + 0.5) / 2 ** 32;
  }

  /** A standard normal (Box-Muller pairs, cos first). */
  normal(): number {
    if (this.#spare !== null) {
      const z = this.#spare;
      this.#spare = null;
      return z;
    }
    const u1 = this.uniform();
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.#spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }

  /** An F32 tensor of standard normals, filled in row-major order. */
  tensor(shape: readonly number[]): Tensor<'F32'> {
    const t = Tensor.zeros('F32', shape);
    for (let i = 0; i < t.numel; i++) t.data[i] = this.normal();
    return t;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
