/**
 * The JSON bodies of completion and chat answers, whole and as SSE chunks, in the shapes OpenAI's
 * API and vLLM give them (../../../../shared/research/vllm.md §2.1-2.2).
 */
import type { FinishReason, StepLogprobs, TokenLogprob } from './engine.js';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function usage(prompt: number, completion: number): Usage {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** Chat's `logprobs.content`: one entry per token, its alternatives as a list. */
export function chatLogprobs(steps: readonly StepLogprobs[]): { content: unknown[] } {
  const one = (t: TokenLogprob) => ({ token: t.text, logprob: t.logprob, bytes: t.bytes });
  return { content: steps.map((s) => ({ ...one(s), top_logprobs: s.top.map(one) })) };
}

/**
 * Completions' legacy `logprobs`: parallel lists, alternatives as token -> log-prob maps that also
 * hold the sampled token (as vLLM does); `text_offset` counts from `offset`, the text already sent.
 */
export function completionLogprobs(steps: readonly StepLogprobs[], offset = 0) {
  const text_offset: number[] = [];
  let at = offset;
  for (const s of steps) {
    text_offset.push(at);
    at += s.text.length;
  }
  return {
    tokens: steps.map((s) => s.text),
    token_logprobs: steps.map((s) => s.logprob),
    top_logprobs: steps.map((s) => Object.fromEntries([...s.top, s].map((t) => [t.text, t.logprob]))),
    text_offset,
  };
}

export interface Envelope {
  id: string;
  created: number;
  model: string;
}

export function completionBody(e: Envelope, text: string, steps: StepLogprobs[] | null, finish: FinishReason, u: Usage) {
  return {
    ...e,
    object: 'text_completion',
    choices: [{ index: 0, text, logprobs: steps ? completionLogprobs(steps) : null, finish_reason: finish, stop_reason: null }],
    usage: u,
  };
}

export function chatBody(e: Envelope, text: string, steps: StepLogprobs[] | null, finish: FinishReason, u: Usage) {
  return {
    ...e,
    object: 'chat.completion',
    choices: [{ index: 0, message: { role: 'assistant', content: text }, logprobs: steps ? chatLogprobs(steps) : null, finish_reason: finish, stop_reason: null }],
    usage: u,
  };
}

/** One SSE chunk's choice: a text delta with its token's log-probs, or the last one with the finish reason. */
export function chunk(e: Envelope, chat: boolean, choice: { text?: string; role?: boolean; logprobs?: StepLogprobs | null; offset?: number; finish?: FinishReason }) {
  const lp = choice.logprobs ? (chat ? chatLogprobs([choice.logprobs]) : completionLogprobs([choice.logprobs], choice.offset)) : null;
  const finish = choice.finish ?? null;
  const c = chat
    ? { index: 0, delta: choice.role ? { role: 'assistant', content: '' } : choice.text === undefined ? {} : { content: choice.text }, logprobs: lp, finish_reason: finish }
    : { index: 0, text: choice.text ?? '', logprobs: lp, finish_reason: finish };
  return { ...e, object: chat ? 'chat.completion.chunk' : 'text_completion', choices: [c] };
}

export function usageChunk(e: Envelope, chat: boolean, u: Usage) {
  return { ...e, object: chat ? 'chat.completion.chunk' : 'text_completion', choices: [], usage: u };
}
