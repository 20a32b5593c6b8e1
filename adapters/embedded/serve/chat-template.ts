/**
 * How chat messages become one prompt. tokenizer_config.json's `chat_template` is Jinja, which
 * this server does not run; instead the format is chosen from the tokenizer's special tokens:
 *
 * - ChatML, as Qwen models are trained on it, when `<|im_start|>` and `<|im_end|>` are tokens:
 *   `<|im_start|>{role}\n{content}<|im_end|>\n` per message, then `<|im_start|>assistant\n`;
 *   the reply ends at `<|im_end|>` (a stop token).
 * - Otherwise a plain transcript, `{role}: {content}\n` per message, then `assistant:`. A model
 *   without chat tokens (qwen3-mini has only `<|endoftext|>`) was never taught turns, so nothing
 *   better exists; the reply is cut where it would start the user's next line (a stop string).
 */
import type { BpeTokenizer } from '../../../core/src/tokenizer/index.js';
import type { ChatMessage } from './protocol.js';

export interface ChatPrompt {
  text: string;
  /** Token ids that end the reply, on top of the model's EOS. */
  stopTokens: number[];
  /** Strings that end the reply, on top of the request's. */
  stopStrings: string[];
  format: 'chatml' | 'transcript';
}

export function chatPrompt(messages: readonly ChatMessage[], tokenizer: BpeTokenizer): ChatPrompt {
  const start = tokenizer.tokenToId('<|im_start|>');
  const end = tokenizer.tokenToId('<|im_end|>');
  if (start !== undefined && end !== undefined) {
    const text = messages.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join('') + '<|im_start|>assistant\n';
    return { text, stopTokens: [end], stopStrings: [], format: 'chatml' };
  }
  const text = messages.map((m) => `${m.role}: ${m.content}\n`).join('') + 'assistant:';
  return { text, stopTokens: [], stopStrings: ['\nuser:'], format: 'transcript' };
}
