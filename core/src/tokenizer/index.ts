export { BpeTokenizer, type AddedToken } from './bpe.js';
export { BYTE_LEVEL_SPLIT, BYTE_TO_CHAR, CHAR_TO_BYTE, splitWords, toByteChars, tokenBytes } from './byte-level.js';
