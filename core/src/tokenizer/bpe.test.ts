/**
 * BpeTokenizer against the real Hugging Face `tokenizers` library, run at test time in the
 * project's venv on the same tokenizer.json and the same strings: the ids must be equal, and
 * decode(encode(s)) must give s back.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { beforeAll, describe, expect, it } from 'vitest';

import { SlipstreamError } from '../errors/index.js';
import { BpeTokenizer } from './index.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const TOKENIZER = path.join(root, 'models', 'qwen3-mini', 'tokenizer.json');
const python = path.join(root, '.venv', 'bin', 'python');

const STRINGS = [
  '',
  'Hello, world!',
  'Lantern \\Lan"tern\\, n. A case with transparent sides which holds a light.',
  "I'm sure they'll say it's what we've done, isn't it? I'd've",
  'digits 0 1 12 123 1234567890 3.14159 -42 1e-6 2026-11-28',
  'punctuation!!! ... ?!?; :: --> <= >= == != && || ##',
  'whitespace  runs   of    spaces\tand\t\ttabs \t mixed   ',
  'newlines\nand\n\nblank\n\n\nlines\r\nwindows\r\n  indented\n    more',
  '   leading spaces and trailing   ',
  '\n',
  'café naïve façade Ærø Ångström über straße',
  'Ελληνικά кириллица עברית العربية हिन्दी',
  '中文字符和日本語のテキスト 한국어',
  'emoji 🙂 🚀🚀 👩‍👩‍👧 🇫🇷 ❤️ and a lone 𝄞',
  'special <|endoftext|> token<|endoftext|>glued <|endoftext|><|endoftext|>',
  '<|endoftext|>',
  'not special: <|endoftext| <endoftext|> <|END|>',
  'odd spaces:\u00a0nbsp\u2003em\u3000ideographic\u0085nel\ufeffbom\u200bzwsp',
  'control \u0001\u0002\u001f bytes and DEL \u007f soft\u00adhyphen',
  'mixedCASE camelCase snake_case kebab-case SHOUTING',
  'code: fn main() { let x = vec![1, 2]; println!("{:?}", x); }',
  "'s 's's 'S 'T 'RE ' '",
];

function reference(strings: string[]): { ids: number[][]; decoded: string[] } {
  expect(existsSync(python), 'the Python venv is missing: run `node scripts/python-env.js` (npm test does)').toBe(true);
  const script = [
    'import json, sys',
    'from tokenizers import Tokenizer',
    `tok = Tokenizer.from_file(${JSON.stringify(TOKENIZER)})`,
    'strings = json.load(sys.stdin)',
    'ids = [tok.encode(s).ids for s in strings]',
    'print(json.dumps({"ids": ids, "decoded": [tok.decode(i, skip_special_tokens=False) for i in ids]}))',
  ].join('\n');
  const r = spawnSync(python, ['-c', script], { input: JSON.stringify(strings), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python failed:\n${r.stderr}`);
  return JSON.parse(r.stdout) as { ids: number[][]; decoded: string[] };
}

let tok: BpeTokenizer;
let ref: { ids: number[][]; decoded: string[] };

beforeAll(async () => {
  tok = await BpeTokenizer.load(TOKENIZER);
  ref = reference(STRINGS);
});

describe('BpeTokenizer on qwen3-mini', () => {
  it('gives the ids of the tokenizers library', () => {
    for (const [i, s] of STRINGS.entries()) expect(tok.encode(s), JSON.stringify(s)).toEqual(ref.ids[i]);
  });

  it('decodes back to the text, as the tokenizers library does', () => {
    for (const [i, s] of STRINGS.entries()) {
      expect(tok.decode(tok.encode(s)), JSON.stringify(s)).toBe(s);
      expect(tok.decode(ref.ids[i]!)).toBe(ref.decoded[i]);
    }
  });

  it('maps the special token both ways and can skip it when decoding', () => {
    const eos = tok.tokenToId('<|endoftext|>')!;
    expect(eos).toBe(0);
    expect(tok.encode('a<|endoftext|>b')).toContain(eos);
    expect(tok.decode(tok.encode('a<|endoftext|>b'), { skipSpecial: true })).toBe('ab');
  });

  it('keeps a cut UTF-8 character as bytes for streaming', () => {
    const ids = tok.encode('🙂');
    const bytes = ids.map((id) => tok.decodeBytes([id]));
    const joined = Buffer.concat(bytes.map((b) => Buffer.from(b)));
    expect(joined.toString('utf8')).toBe('🙂');
  });

  it('refuses an unknown id and a tokenizer it cannot run, naming them', () => {
    expect(() => tok.decode([1, tok.size])).toThrow(/ids\[1\]/);
    const err = (() => {
      try {
        BpeTokenizer.fromJson({ model: { type: 'Unigram' } }, 'x.json');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(SlipstreamError);
    expect((err as Error).message).toMatch(/x\.json: model\.type/);
  });
});
