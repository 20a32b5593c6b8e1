/**
 * The generation behind `slipstream serve`: one Qwen3Model.generateSteps() run per request (each in
 * its own session, so its own KV cache), turned into text deltas that are safe to send as they
 * come: partial UTF-8 characters wait for their last byte, and text that could be the start of a
 * stop string waits until it is known not to be one. Streaming and non-streaming answers both read
 * these deltas, so they cannot disagree.
 */
import type { Qwen3Model } from '../../../core/src/runtime/index.js';
import type { BpeTokenizer } from '../../../core/src/tokenizer/index.js';

export interface TokenLogprob {
  id: number;
  /** The token alone, decoded (a partial UTF-8 character shows as U+FFFD; `bytes` has the truth). */
  text: string;
  bytes: number[];
  logprob: number;
}

export interface StepLogprobs extends TokenLogprob {
  /** The `top` most likely tokens at this step, most likely first. */
  top: TokenLogprob[];
}

export type FinishReason = 'stop' | 'length';

export type EngineEvent =
  | { kind: 'delta'; text: string; /** The token generated, or null for text flushed at the end. */ token: number | null; logprobs: StepLogprobs | null }
  | { kind: 'done'; finishReason: FinishReason | 'abort'; completionTokens: number };

export interface EngineParams {
  promptIds: number[];
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  seed: number;
  stop: readonly string[];
  /** Token ids that end generation (not part of the answer); [] runs to maxTokens. */
  stopTokens: readonly number[];
  /** Top-N per token, or null: no log-probs. */
  logprobs: number | null;
  signal?: AbortSignal;
}

/**
 * Log-softmax of the raw logits (before temperature, top-k or top-p, as vLLM reports them by
 * default), for the sampled token and the `top` best: float64 sums, one pass for the max.
 */
export function logprobsOf(logits: Float32Array, token: number, top: number, tokenizer: BpeTokenizer): StepLogprobs {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const norm = max + Math.log(sum);
  const entry = (id: number): TokenLogprob => {
    const bytes = tokenizer.decodeBytes([id]);
    return { id, text: new TextDecoder().decode(bytes), bytes: [...bytes], logprob: logits[id]! - norm };
  };
  // top <= 20, so a small sorted insertion list beats sorting the vocabulary.
  const best: number[] = [];
  if (top > 0) {
    for (let i = 0; i < logits.length; i++) {
      if (best.length === top && logits[i]! <= logits[best[top - 1]!]!) continue;
      let at = best.length;
      while (at > 0 && logits[best[at - 1]!]! < logits[i]!) at--;
      best.splice(at, 0, i);
      if (best.length > top) best.pop();
    }
  }
  return { ...entry(token), top: best.map(entry) };
}

/** Length of the longest end of `text` that some stop string begins with (text the next token may complete into a stop). */
function heldBack(text: string, stops: readonly string[]): number {
  let hold = 0;
  for (const s of stops) {
    for (let k = Math.min(s.length - 1, text.length); k > hold; k--) {
      if (text.endsWith(s.slice(0, k))) {
        hold = k;
        break;
      }
    }
  }
  return hold;
}

/**
 * The answer's text as deltas, then one `done`. Text is cut before the first stop string, also
 * one that spans tokens; the tokens of a cut answer still count (and carry log-probs), as in vLLM.
 * Special tokens are left out of the text (vLLM's skip_special_tokens default).
 */
export async function* generateText(model: Qwen3Model, tokenizer: BpeTokenizer, p: EngineParams): AsyncGenerator<EngineEvent, void, undefined> {
  const decoder = new TextDecoder('utf-8', { fatal: false });
  let text = '';
  let sent = 0;
  let count = 0;
  const steps = model.generateSteps(p.promptIds, {
    maxTokens: p.maxTokens,
    temperature: p.temperature,
    topP: p.topP,
    topK: p.topK,
    seed: p.seed,
    stop: p.stopTokens,
    signal: p.signal,
  });
  for await (const { token, logits } of steps) {
    count++;
    text += decoder.decode(tokenizer.decodeBytes([token], { skipSpecial: true }), { stream: true });
    const logprobs = p.logprobs === null ? null : logprobsOf(logits, token, p.logprobs, tokenizer);
    let cut = -1;
    for (const s of p.stop) {
      // A stop string cannot begin in text already sent: that text never ended in a prefix of one.
      const at = text.indexOf(s, sent);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      yield { kind: 'delta', text: text.slice(sent, cut), token, logprobs };
      // Returning closes generateSteps, which frees the session.
      yield { kind: 'done', finishReason: 'stop', completionTokens: count };
      return;
    }
    const upTo = text.length - heldBack(text, p.stop);
    yield { kind: 'delta', text: text.slice(sent, upTo), token, logprobs };
    sent = upTo;
  }
  const rest = text.slice(sent) + decoder.decode();
  if (rest !== '') yield { kind: 'delta', text: rest, token: null, logprobs: null };
  const atLimit = count >= p.maxTokens || p.promptIds.length + count >= model.config.maxContext;
  yield { kind: 'done', finishReason: p.signal?.aborted ? 'abort' : atLimit ? 'length' : 'stop', completionTokens: count };
}

/** Caps how many generations run at once; the rest wait in arrival order. */
export class Limiter {
  #running = 0;
  readonly #queue: (() => void)[] = [];

  constructor(readonly max: number) {}

  get running(): number {
    return this.#running;
  }

  get waiting(): number {
    return this.#queue.length;
  }

  /** Resolves with a release function once a slot is free; rejects if `signal` aborts first. */
  acquire(signal?: AbortSignal): Promise<() => void> {
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const next = this.#queue.shift();
      if (next) next();
      else this.#running--;
    };
    if (this.#running < this.max) {
      this.#running++;
      return Promise.resolve(release);
    }
    return new Promise((resolve, reject) => {
      // A slot handed over by release() keeps #running as it is: one leaves, one enters.
      const wake = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve(release);
      };
      const onAbort = () => {
        const i = this.#queue.indexOf(wake);
        if (i >= 0) this.#queue.splice(i, 1);
        reject(signal!.reason);
      };
      if (signal?.aborted) return reject(signal.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(wake);
    });
  }
}
