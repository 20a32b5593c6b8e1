/**
 * Synthetic attention inputs that carry what makes real activations hard to quantize and easy to
 * sparsify (attention.md §2.1, §3): channel outliers in Q and K, a large mean shared by all keys
 * (why smooth-K exists), heavy-tailed V around per-channel means, and locality — tokens on a video grid (DiT) or a
 * sequence (LLM) whose queries and keys vary smoothly with position, so nearby tokens attend to
 * each other. Deterministic for a seed.
 */
export interface AttentionInputs {
  name: string;
  /** HND, one batch: [1, H, N, D] flattened. */
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  heads: number;
  tokens: number;
  headDim: number;
  causal: boolean;
}

/**
 * Sets how peaked the attention is: with these two, rows range from ~20 keys holding 90% of the
 * mass to several hundred (measured at N=4096, D=128) — a mix of peaked and spread rows, the case
 * that motivates the hybrid Top-k/Top-p rule (SpargeAttention2).
 */
const AMPLITUDE = 0.75;
/** Correlation length of queries and keys, in grid units (frames, rows, columns, or tokens/8). */
const LENGTH = 3;

function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const u = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
  return { u, normal };
}

/**
 * Random Fourier features of the grid position: Σ_c f_c(x) f_c(y) ≈ D·exp(−|x−y|²/2ℓ²), so a
 * query scores highest against keys near it and the attention map is local (what block-sparse
 * attention exploits), with ℓ = LENGTH grid units.
 */
function positionalField(coords: number[][], d: number, seed: number): Float32Array {
  const r = rng(seed);
  const omega = Array.from({ length: d }, () => coords[0].map(() => r.normal() / LENGTH));
  const phase = Array.from({ length: d }, () => r.u() * 2 * Math.PI);
  const out = new Float32Array(coords.length * d);
  coords.forEach((c, i) => {
    for (let ch = 0; ch < d; ch += 1) {
      let a = phase[ch];
      for (let j = 0; j < c.length; j += 1) a += omega[ch][j] * c[j];
      out[i * d + ch] = Math.SQRT2 * Math.cos(a);
    }
  });
  return out;
}

function gridCoords(tokens: number, kind: 'video' | 'sequence'): number[][] {
  if (kind === 'sequence') return Array.from({ length: tokens }, (_, i) => [i / 8]);
  // A latent video: frames × height × width with 16:9-ish frames, as Wan's 3-D patch grid.
  const w = 40;
  const h = 24;
  return Array.from({ length: tokens }, (_, i) => [Math.floor(i / (w * h)), Math.floor(i / w) % h, i % w]);
}

export function makeInputs(kind: 'dit' | 'llm', tokens: number, headDim: number, heads = 1, seed = 1): AttentionInputs {
  const coords = gridCoords(tokens, kind === 'dit' ? 'video' : 'sequence');
  const n = tokens * headDim * heads;
  const q = new Float32Array(n);
  const k = new Float32Array(n);
  const v = new Float32Array(n);
  for (let h = 0; h < heads; h += 1) {
    const r = rng(seed * 7919 + h);
    const fq = positionalField(coords, headDim, seed * 31 + h);
    const fk = positionalField(coords, headDim, seed * 31 + h); // same field: queries meet nearby keys
    const outlier = (ch: number) => (ch % 16 === 3 ? 4 : 1); // one channel in 16 is 4× larger
    const keyMean = Float64Array.from({ length: headDim }, () => 4 + 2 * r.normal()); // shared by all keys
    const valueMean = Float64Array.from({ length: headDim }, () => r.normal()); // per-channel offsets of DiT values
    const base = h * tokens * headDim;
    for (let i = 0; i < tokens; i += 1)
      for (let c = 0; c < headDim; c += 1) {
        const at = base + i * headDim + c;
        q[at] = (AMPLITUDE * fq[i * headDim + c] + 0.3 * r.normal()) * outlier(c);
        k[at] = (AMPLITUDE * fk[i * headDim + c] + 0.3 * r.normal()) * outlier(c) + keyMean[c];
        // Student-t with 3 degrees of freedom: heavy tails as in DiT value activations.
        const chi2 = r.normal() ** 2 + r.normal() ** 2 + r.normal() ** 2;
        v[at] = valueMean[c] + r.normal() / Math.sqrt(chi2 / 3);
      }
  }
  return { name: `${kind} N=${tokens} D=${headDim}`, q, k, v, heads, tokens, headDim, causal: kind === 'llm' };
}

/**
 * Exact float64 attention for the listed query rows of head h (HND, one batch): the reference
 * every method is measured against. Returns rows.length × D values.
 */
export function referenceRows(x: AttentionInputs, h: number, rows: readonly number[], scale = 1 / Math.sqrt(x.headDim)): Float64Array {
  const { tokens: n, headDim: d } = x;
  const base = h * n * d;
  const out = new Float64Array(rows.length * d);
  const s = new Float64Array(n);
  rows.forEach((i, r) => {
    const last = x.causal ? i : n - 1;
    let max = -Infinity;
    for (let j = 0; j <= last; j += 1) {
      let dot = 0;
      for (let c = 0; c < d; c += 1) dot += x.q[base + i * d + c] * x.k[base + j * d + c];
      s[j] = dot * scale;
      if (s[j] > max) max = s[j];
    }
    let sum = 0;
    for (let j = 0; j <= last; j += 1) {
      s[j] = Math.exp(s[j] - max);
      sum += s[j];
    }
    for (let j = 0; j <= last; j += 1) {
      const p = s[j] / sum;
      for (let c = 0; c < d; c += 1) out[r * d + c] += p * x.v[base + j * d + c];
    }
  });
  return out;
}

/** `count` distinct query rows spread over the sequence (first and last included). */
export function sampleRows(tokens: number, count: number): number[] {
  const c = Math.min(count, tokens);
  return Array.from({ length: c }, (_, i) => Math.round((i * (tokens - 1)) / Math.max(1, c - 1)));
}
