/**
 * One palette for a whole video, and every pixel as an index into it.
 *
 * A video with at most `maxColors` distinct colours keeps them all, so its GIF is lossless: the
 * wan-mini shapes are flat colours, and a palette that shifted them would show as an error that
 * the accelerated pipeline did not make. Otherwise the colour histogram is cut into boxes
 * (median cut): the box with the largest squared error is split in two along its channel of
 * largest variance, until there are `maxColors` boxes. The cut sits where the two halves' summed
 * squared error is least rather than at the population median, so a small object of a distinct
 * colour gets its own box at once instead of after the background has been halved many times.
 * Each box's colour is its pixel-weighted mean, and each pixel takes the nearest palette colour
 * (squared RGB distance), which is never farther than its own box's mean.
 */
import { invalidArgument } from '../../../core/src/errors/index.js';

export interface Quantized {
  /** RGB triples, palette.length / 3 ≤ maxColors entries. */
  palette: Uint8Array;
  /** Per frame, one palette index per pixel. */
  indices: Uint8Array[];
}

interface Box {
  start: number;
  end: number;
  /** Summed squared distance of the box's pixels to its mean: how much splitting it can gain. */
  sse: number;
  axis: number;
  mean: [number, number, number];
}

const channel = (key: number, c: number): number => (key >>> (16 - 8 * c)) & 0xff;

/** Pixels per run that histogram can tag: key · 2^29 + pixel stays below 2^53, exact in a double. */
const MAX_PIXELS = 2 ** 29;

/**
 * Distinct colours in ascending order, how many pixels have each, and each pixel's colour as an
 * index into them. One sort of (colour, pixel) pairs rather than a hash map: a noisy video has
 * hundreds of thousands of colours, and a typed-array sort handles that several times faster.
 * Ascending order also makes the palette depend on the colours only, not on where they appear.
 */
function histogram(frames: readonly Uint8Array[]): { keys: Uint32Array; counts: Float64Array; colourOf: Uint32Array } {
  const total = frames.reduce((n, f) => n + f.length / 3, 0);
  if (total > MAX_PIXELS) throw invalidArgument('frames', `at most ${MAX_PIXELS} pixels in all`, total);
  const tagged = new Float64Array(total);
  let p = 0;
  for (const f of frames)
    for (let i = 0; i < f.length; i += 3, p += 1) tagged[p] = ((f[i]! << 16) | (f[i + 1]! << 8) | f[i + 2]!) * MAX_PIXELS + p;
  tagged.sort();
  const colourOf = new Uint32Array(total);
  const keys: number[] = [];
  const counts: number[] = [];
  for (let i = 0; i < total; i += 1) {
    const key = Math.floor(tagged[i]! / MAX_PIXELS);
    if (keys.length === 0 || keys[keys.length - 1] !== key) {
      keys.push(key);
      counts.push(0);
    }
    counts[counts.length - 1]! += 1;
    colourOf[tagged[i]! - key * MAX_PIXELS] = keys.length - 1;
  }
  return { keys: Uint32Array.from(keys), counts: Float64Array.from(counts), colourOf };
}

/** The distinct colours as channel planes, and the order that boxes partition into ranges. */
class Colours {
  readonly rgb: Uint8Array;
  readonly weights: Float64Array;
  readonly order: Uint32Array;
  private readonly scratch: Uint32Array;

  constructor(keys: Uint32Array, counts: Float64Array) {
    this.rgb = new Uint8Array(keys.length * 3);
    keys.forEach((k, i) => {
      for (let c = 0; c < 3; c += 1) this.rgb[3 * i + c] = channel(k, c);
    });
    this.weights = counts;
    this.order = Uint32Array.from(keys.keys());
    this.scratch = new Uint32Array(keys.length);
  }

  measure(start: number, end: number): Box {
    const { rgb, weights, order } = this;
    let w = 0;
    let sr = 0;
    let sg = 0;
    let sb = 0;
    for (let i = start; i < end; i += 1) {
      const j = order[i]!;
      const n = weights[j]!;
      w += n;
      sr += n * rgb[3 * j]!;
      sg += n * rgb[3 * j + 1]!;
      sb += n * rgb[3 * j + 2]!;
    }
    const mr = sr / w;
    const mg = sg / w;
    const mb = sb / w;
    // Second pass about the mean: Σx² - (Σx)²/w cancels badly and would make equal boxes differ.
    let qr = 0;
    let qg = 0;
    let qb = 0;
    for (let i = start; i < end; i += 1) {
      const j = order[i]!;
      const n = weights[j]!;
      qr += n * (rgb[3 * j]! - mr) ** 2;
      qg += n * (rgb[3 * j + 1]! - mg) ** 2;
      qb += n * (rgb[3 * j + 2]! - mb) ** 2;
    }
    const axis = qr >= qg && qr >= qb ? 0 : qg >= qb ? 1 : 2;
    return { start, end, sse: qr + qg + qb, axis, mean: [Math.round(mr), Math.round(mg), Math.round(mb)] };
  }

  /** Splits a box at the cut along its axis with the least summed squared error of the halves. */
  split(box: Box): [Box, Box] {
    const { rgb, weights, order, scratch } = this;
    const c = box.axis;
    // Counting sort by the axis value: one pass, and colours with equal values stay together.
    const members = new Uint32Array(257);
    const weight = new Float64Array(256);
    for (let i = box.start; i < box.end; i += 1) {
      const v = rgb[3 * order[i]! + c]!;
      members[v + 1]! += 1;
      weight[v]! += weights[order[i]!]!;
    }
    for (let v = 0; v < 256; v += 1) members[v + 1]! += members[v]!;
    const at = members.slice(0, 256);
    for (let i = box.start; i < box.end; i += 1) scratch[box.start + at[rgb[3 * order[i]! + c]!]!++] = order[i]!;
    order.set(scratch.subarray(box.start, box.end), box.start);
    let total = 0;
    let totalSum = 0;
    for (let v = 0; v < 256; v += 1) {
      total += weight[v]!;
      totalSum += weight[v]! * v;
    }
    // Least summed SSE of the halves = greatest S_L²/W_L + S_R²/W_R (the total Σw·x² is fixed).
    // The cut goes after value v, between values present on both sides.
    let best = -1;
    let bestScore = -Infinity;
    let wl = 0;
    let sl = 0;
    for (let v = 0; v < 255; v += 1) {
      wl += weight[v]!;
      sl += weight[v]! * v;
      if (wl === 0 || wl === total || weight[v]! === 0) continue;
      const score = (sl * sl) / wl + ((totalSum - sl) * (totalSum - sl)) / (total - wl);
      if (score > bestScore) {
        bestScore = score;
        best = box.start + members[v + 1]!;
      }
    }
    return [this.measure(box.start, best), this.measure(best, box.end)];
  }
}

/** The palette, and for each distinct colour the box (= palette entry) it ended up in. */
function medianCut(keys: Uint32Array, counts: Float64Array, maxColors: number): { palette: Uint8Array; boxOf: Uint8Array } {
  const colours = new Colours(keys, counts);
  const boxes = [colours.measure(0, keys.length)];
  while (boxes.length < maxColors) {
    let pick = 0;
    for (let i = 1; i < boxes.length; i += 1) if (boxes[i]!.sse > boxes[pick]!.sse) pick = i;
    // A box of one colour has no error; if the largest has none, every colour has its own box.
    if (!(boxes[pick]!.sse > 0)) break;
    boxes.splice(pick, 1, ...colours.split(boxes[pick]!));
  }
  const boxOf = new Uint8Array(keys.length);
  boxes.forEach((box, i) => {
    for (let k = box.start; k < box.end; k += 1) boxOf[colours.order[k]!] = i;
  });
  return { palette: Uint8Array.from(boxes.flatMap((box) => box.mean)), boxOf };
}

/**
 * Nearest palette colour by squared RGB distance. The search starts from a guess (the colour's
 * own box), goes outward from the colour's red value, and stops in a direction once the red
 * difference alone is farther than the best so far: exact, and few distances per colour.
 */
class NearestColour {
  private readonly byRed: Uint16Array;
  private readonly reds: Uint8Array;

  constructor(private readonly palette: Uint8Array) {
    this.byRed = Uint16Array.from({ length: palette.length / 3 }, (_, i) => i).sort((a, b) => palette[3 * a]! - palette[3 * b]! || a - b);
    this.reds = Uint8Array.from(this.byRed, (i) => palette[3 * i]!);
  }

  find(r: number, g: number, b: number, guess: number): number {
    const { palette, byRed, reds } = this;
    let lo = 0;
    let hi = reds.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (reds[mid]! < r) lo = mid + 1;
      else hi = mid;
    }
    let best = guess;
    let bestD = (palette[3 * guess]! - r) ** 2 + (palette[3 * guess + 1]! - g) ** 2 + (palette[3 * guess + 2]! - b) ** 2;
    const consider = (k: number): void => {
      const i = byRed[k]!;
      const dr = palette[3 * i]! - r;
      const dg = palette[3 * i + 1]! - g;
      const db = palette[3 * i + 2]! - b;
      const d = dr * dr + dg * dg + db * db;
      if (d < bestD || (d === bestD && i < best)) {
        bestD = d;
        best = i;
      }
    };
    for (let up = lo, down = lo - 1; up < reds.length || down >= 0; ) {
      const du = up < reds.length ? (reds[up]! - r) ** 2 : Infinity;
      const dd = down >= 0 ? (reds[down]! - r) ** 2 : Infinity;
      if (Math.min(du, dd) > bestD) break;
      if (du <= dd) consider(up++);
      else consider(down--);
    }
    return best;
  }
}

/** One palette for all `frames` (RGB bytes) and the frames as indices into it. */
export function quantize(frames: readonly Uint8Array[], maxColors = 256): Quantized {
  if (!Number.isInteger(maxColors) || maxColors < 1 || maxColors > 256) throw invalidArgument('maxColors', 'an integer in [1, 256]', maxColors);
  const { keys, counts, colourOf } = histogram(frames);
  // Palette index of each distinct colour.
  const entry = new Uint8Array(keys.length);
  let palette: Uint8Array;
  if (keys.length <= maxColors) {
    const exact = new Uint8Array(keys.length * 3);
    keys.forEach((k, i) => {
      exact.set([channel(k, 0), channel(k, 1), channel(k, 2)], 3 * i);
      entry[i] = i;
    });
    palette = exact;
  } else {
    const cut = medianCut(keys, counts, maxColors);
    palette = cut.palette;
    const search = new NearestColour(palette);
    keys.forEach((k, i) => {
      entry[i] = search.find(channel(k, 0), channel(k, 1), channel(k, 2), cut.boxOf[i]!);
    });
  }
  let p = 0;
  const indices = frames.map((f) => {
    const out = new Uint8Array(f.length / 3);
    for (let i = 0; i < out.length; i += 1, p += 1) out[i] = entry[colourOf[p]!]!;
    return out;
  });
  return { palette, indices };
}
