/**
 * A byte-level BPE tokenizer read from a Hugging Face `tokenizer.json` (GPT-2, Qwen and most
 * causal LMs): added/special tokens split out first, the ByteLevel pre-tokenizer (GPT-2 regex
 * and byte → code point map) or a Split(regex) + ByteLevel sequence, BPE merges by rank, and the
 * ByteLevel decoder. Other normalizers, pre-tokenizers or models are refused with the field named.
 */
import { readFile } from 'node:fs/promises';

import { SlipstreamError } from '../errors/index.js';
import { BYTE_LEVEL_SPLIT, splitWords, toByteChars, tokenBytes } from './byte-level.js';

/** An entry of tokenizer.json's `added_tokens`. */
export interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  lstrip: boolean;
  rstrip: boolean;
  singleWord: boolean;
}

interface Json {
  [key: string]: unknown;
}

function schemaError(where: string, message: string): SlipstreamError {
  return new SlipstreamError('SLIP_E_SCHEMA', `${where}: ${message}`);
}

function obj(v: unknown): Json | null {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : null;
}

/** How text becomes words: a regex split (null: the whole segment is one word), then bytes. */
interface PreTokenizer {
  pattern: RegExp | null;
  addPrefixSpace: boolean;
}

function byteLevel(p: Json, where: string): PreTokenizer {
  const useRegex = p.use_regex ?? true;
  if (typeof useRegex !== 'boolean') throw schemaError(where, `expected a boolean use_regex, got ${JSON.stringify(useRegex)}`);
  return { pattern: useRegex ? BYTE_LEVEL_SPLIT : null, addPrefixSpace: p.add_prefix_space === true };
}

function preTokenizer(p: Json | null, where: string): PreTokenizer {
  if (p?.type === 'ByteLevel') return byteLevel(p, where);
  // Qwen2/3 and Llama 3: Split(Regex, Isolated) then ByteLevel(use_regex: false).
  const steps = p?.type === 'Sequence' && Array.isArray(p.pretokenizers) ? (p.pretokenizers as unknown[]).map(obj) : null;
  if (steps?.length === 2 && steps[0]?.type === 'Split' && steps[1]?.type === 'ByteLevel') {
    const split = steps[0];
    const regex = obj(split.pattern)?.Regex;
    if (typeof regex !== 'string' || split.behavior !== 'Isolated' || split.invert === true) {
      throw schemaError(`${where}.pretokenizers[0]`, 'expected a Split with a Regex pattern, behavior "Isolated" and invert false');
    }
    const tail = byteLevel(steps[1], `${where}.pretokenizers[1]`);
    if (tail.pattern !== null) throw schemaError(`${where}.pretokenizers[1]`, 'expected use_regex false after a Split');
    let pattern: RegExp;
    try {
      pattern = new RegExp(regex, 'gu');
    } catch (err) {
      throw schemaError(`${where}.pretokenizers[0].pattern.Regex`, `JavaScript cannot compile ${JSON.stringify(regex)} (${(err as Error).message})`);
    }
    return { pattern, addPrefixSpace: tail.addPrefixSpace };
  }
  throw schemaError(where, `expected a ByteLevel pre-tokenizer (or Split + ByteLevel), got ${JSON.stringify(p?.type ?? null)}`);
}

export class BpeTokenizer {
  readonly vocab: ReadonlyMap<string, number>;
  readonly added: readonly AddedToken[];
  readonly #tokens: string[] = [];
  readonly #ranks = new Map<string, number>();
  readonly #pre: PreTokenizer;
  readonly #nfc: boolean;
  readonly #addedPattern: RegExp | null;
  readonly #addedByContent: Map<string, AddedToken>;
  readonly #cache = new Map<string, number[]>();

  private constructor(vocab: Map<string, number>, merges: [string, string][], added: AddedToken[], pre: PreTokenizer, nfc: boolean) {
    this.vocab = vocab;
    this.added = added;
    this.#pre = pre;
    this.#nfc = nfc;
    for (const [t, id] of vocab) this.#tokens[id] = t;
    for (const a of added) this.#tokens[a.id] = a.content;
    merges.forEach(([a, b], i) => {
      const key = `${a} ${b}`;
      if (!this.#ranks.has(key)) this.#ranks.set(key, i);
    });
    this.#addedByContent = new Map(added.map((a) => [a.content, a]));
    // Longest first, so that "<|im_start|>" wins over a token that is its prefix.
    const alternatives = [...added].sort((x, y) => y.content.length - x.content.length).map((a) => a.content.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    this.#addedPattern = alternatives.length ? new RegExp(alternatives.join('|'), 'gu') : null;
  }

  /** From a tokenizer.json file. */
  static async load(path: string): Promise<BpeTokenizer> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      throw new SlipstreamError('SLIP_E_IO', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new SlipstreamError('SLIP_E_CORRUPT_FILE', `${path} is not JSON: ${(err as Error).message}`, { cause: err });
    }
    return BpeTokenizer.fromJson(json, path);
  }

  /** From tokenizer.json's parsed contents; `where` names it in errors. */
  static fromJson(json: unknown, where = 'tokenizer.json'): BpeTokenizer {
    const root = obj(json);
    if (root === null) throw schemaError(where, 'expected an object');
    const model = obj(root.model);
    if (model?.type !== 'BPE') throw schemaError(`${where}: model.type`, `expected "BPE", got ${JSON.stringify(model?.type ?? null)}`);
    if (model.byte_fallback === true) throw schemaError(`${where}: model.byte_fallback`, 'expected false (byte-level BPE needs no fallback)');
    const v = obj(model.vocab);
    if (v === null) throw schemaError(`${where}: model.vocab`, 'expected an object of token → id');
    const vocab = new Map<string, number>();
    for (const [t, id] of Object.entries(v)) {
      if (!Number.isInteger(id) || (id as number) < 0) throw schemaError(`${where}: model.vocab[${JSON.stringify(t)}]`, `expected a non-negative integer id, got ${JSON.stringify(id)}`);
      vocab.set(t, id as number);
    }
    if (!Array.isArray(model.merges)) throw schemaError(`${where}: model.merges`, 'expected an array');
    // Two spellings: ["a", "b"] (tokenizers >= 0.20) and "a b" (older files).
    const merges = (model.merges as unknown[]).map((m, i): [string, string] => {
      if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') return [m[0], m[1]];
      if (typeof m === 'string') {
        const sp = m.indexOf(' ', 1);
        if (sp > 0) return [m.slice(0, sp), m.slice(sp + 1)];
      }
      throw schemaError(`${where}: model.merges[${i}]`, `expected ["a", "b"] or "a b", got ${JSON.stringify(m)}`);
    });
    const added = (Array.isArray(root.added_tokens) ? root.added_tokens : []).map((a, i): AddedToken => {
      const o = obj(a);
      if (o === null || typeof o.content !== 'string' || o.content === '' || !Number.isInteger(o.id)) {
        throw schemaError(`${where}: added_tokens[${i}]`, 'expected { id, content, ... }');
      }
      return {
        id: o.id as number,
        content: o.content,
        special: o.special === true,
        lstrip: o.lstrip === true,
        rstrip: o.rstrip === true,
        singleWord: o.single_word === true,
      };
    });
    const normalizer = obj(root.normalizer);
    if (normalizer !== null && normalizer.type !== 'NFC') {
      throw schemaError(`${where}: normalizer`, `expected none or NFC, got ${JSON.stringify(normalizer.type)}`);
    }
    const decoder = obj(root.decoder);
    if (decoder !== null && decoder.type !== 'ByteLevel') {
      throw schemaError(`${where}: decoder`, `expected a ByteLevel decoder, got ${JSON.stringify(decoder.type)}`);
    }
    const pre = preTokenizer(obj(root.pre_tokenizer), `${where}: pre_tokenizer`);
    return new BpeTokenizer(vocab, merges, added, pre, normalizer !== null);
  }

  /** The largest id + 1 over the vocabulary and the added tokens. */
  get size(): number {
    return this.#tokens.length;
  }

  /** The id of a token (vocabulary or added), or undefined. */
  tokenToId(token: string): number | undefined {
    return this.#addedByContent.get(token)?.id ?? this.vocab.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.#tokens[id];
  }

  /** Token ids of `text`; added tokens written in the text (e.g. "<|endoftext|>") become their id. */
  encode(text: string): number[] {
    if (typeof text !== 'string') throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected a string for text, got ${typeof text}`);
    const ids: number[] = [];
    for (const seg of this.#splitAdded(text)) {
      if (typeof seg !== 'string') {
        ids.push(seg.id);
        continue;
      }
      let s = this.#nfc ? seg.normalize('NFC') : seg;
      if (this.#pre.addPrefixSpace && s.length > 0 && !/^\s/u.test(s)) s = ` ${s}`;
      const words = this.#pre.pattern ? splitWords(s, this.#pre.pattern) : [s];
      for (const w of words) ids.push(...this.#bpe(toByteChars(w)));
    }
    return ids;
  }

  /** The bytes that `ids` stand for (a partial UTF-8 character stays partial: for streaming). */
  decodeBytes(ids: readonly number[], options: { skipSpecial?: boolean } = {}): Uint8Array {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (const [i, id] of ids.entries()) {
      const t = Number.isInteger(id) ? this.#tokens[id] : undefined;
      if (t === undefined) throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `expected token ids in [0, ${this.size}) for ids, got ${id} at ids[${i}]`);
      const a = this.#addedByContent.get(t);
      if (a !== undefined && a.id === id && options.skipSpecial && a.special) continue;
      const b = a !== undefined && a.id === id ? new TextEncoder().encode(t) : tokenBytes(t);
      parts.push(b);
      total += b.length;
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /** Text of `ids`; invalid UTF-8 (a cut multi-byte character) becomes U+FFFD. */
  decode(ids: readonly number[], options: { skipSpecial?: boolean } = {}): string {
    return new TextDecoder('utf-8', { fatal: false }).decode(this.decodeBytes(ids, options));
  }

  /** text → plain segments and added tokens, with lstrip/rstrip taking the whitespace beside. */
  #splitAdded(text: string): (string | AddedToken)[] {
    if (this.#addedPattern === null) return [text];
    const out: (string | AddedToken)[] = [];
    let start = 0;
    for (const m of text.matchAll(this.#addedPattern)) {
      const a = this.#addedByContent.get(m[0])!;
      let from = m.index!;
      let to = from + m[0].length;
      if (a.singleWord) {
        const before = text.slice(0, from), after = text.slice(to);
        if (/[\p{L}\p{N}_]$/u.test(before) || /^[\p{L}\p{N}_]/u.test(after)) continue;
      }
      if (from < start) continue;
      if (a.lstrip) while (from > start && /\s/u.test(text[from - 1]!)) from--;
      if (a.rstrip) while (to < text.length && /\s/u.test(text[to]!)) to++;
      if (from > start) out.push(text.slice(start, from));
      out.push(a);
      start = to;
    }
    if (start < text.length) out.push(text.slice(start));
    return out;
  }

  /** BPE on one word (already in byte code points): merge the lowest-ranked adjacent pair first. */
  #bpe(word: string): number[] {
    const hit = this.#cache.get(word);
    if (hit !== undefined) return hit;
    let parts = [...word];
    while (parts.length > 1) {
      let best = Infinity, at = -1;
      for (let i = 0; i + 1 < parts.length; i++) {
        const r = this.#ranks.get(`${parts[i]} ${parts[i + 1]}`);
        if (r !== undefined && r < best) {
          best = r;
          at = i;
        }
      }
      if (at < 0) break;
      const a = parts[at]!, b = parts[at + 1]!;
      // Every occurrence of the pair, left to right, as the tokenizers library merges it.
      const next: string[] = [];
      for (let i = 0; i < parts.length; i++) {
        if (i + 1 < parts.length && parts[i] === a && parts[i + 1] === b) {
          next.push(a + b);
          i++;
        } else next.push(parts[i]!);
      }
      parts = next;
    }
    const ids = parts.map((p) => {
      const id = this.vocab.get(p);
      if (id === undefined) throw new SlipstreamError('SLIP_E_CORRUPT_FILE', `expected the token ${JSON.stringify(p)} in the vocabulary (byte-level BPE has every byte), got none`);
      return id;
    });
    if (this.#cache.size < 100_000) this.#cache.set(word, ids);
    return ids;
  }
}
