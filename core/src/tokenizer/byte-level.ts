/**
 * The byte-level pieces of GPT-2-style tokenizers (Hugging Face `tokenizers`' ByteLevel
 * pre-tokenizer and decoder): the reversible map from the 256 byte values to printable code
 * points, and the regex that splits text into words before BPE.
 */

/**
 * Byte → code point: the printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') map to themselves,
 * the other 68 (controls, space, soft hyphen...) to 256, 257, ... in byte order, so that every
 * byte has a visible, non-whitespace stand-in and BPE never sees raw spaces or controls.
 */
function byteTable(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) table.push(String.fromCodePoint(printable(b) ? b : next++));
  return table;
}

export const BYTE_TO_CHAR: readonly string[] = byteTable();
export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

/**
 * Unicode White_Space, spelled out: JavaScript's `\s` differs from it (it adds U+FEFF and lacks
 * U+0085), and the tokenizers library matches the Unicode property.
 */
const WS = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

/**
 * GPT-2's split, as ByteLevel uses it when `use_regex` is true: English contractions, a letter
 * run, a digit run or a run of other symbols (each with at most one leading space), then
 * whitespace: a run that leaves its last space to the next word, or a trailing run.
 */
export const BYTE_LEVEL_SPLIT = new RegExp(
  `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])|[${WS}]+`,
  'gu',
);

/** The pieces of `text` the regex matches, in order (together they cover the text). */
export function splitWords(text: string, pattern: RegExp = BYTE_LEVEL_SPLIT): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(pattern)) if (m[0].length > 0) out.push(m[0]);
  return out;
}

const encoder = new TextEncoder();

/** UTF-8 bytes of `text`, each replaced by its stand-in code point. */
export function toByteChars(text: string): string {
  let s = '';
  for (const b of encoder.encode(text)) s += BYTE_TO_CHAR[b];
  return s;
}

/**
 * A token's bytes: every code point mapped back through the table; a token with a code point
 * outside it (an added token such as "<|endoftext|>" written in plain text) is its own UTF-8.
 */
export function tokenBytes(token: string): Uint8Array {
  const out: number[] = [];
  for (const ch of token) {
    const b = CHAR_TO_BYTE.get(ch);
    if (b === undefined) return encoder.encode(token);
    out.push(b);
  }
  return Uint8Array.from(out);
}
