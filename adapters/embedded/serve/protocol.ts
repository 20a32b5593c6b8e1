/**
 * The OpenAI request bodies `slipstream serve` accepts, checked field by field into one plain
 * GenerationRequest, and the errors it answers with, in OpenAI's shape
 * `{"error": {"message", "type", "param", "code"}}`.
 *
 * Unknown fields are ignored, as vLLM does (clients send `user`, `metadata`, ...). Known fields the
 * runtime cannot honour are refused with a 400 naming the field when they ask for something other
 * than their no-op value: silently ignoring `n: 2` or a penalty would answer a different question.
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = status === 404 ? 'not_found_error' : status >= 500 ? 'server_error' : 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

export function badParam(param: string, expected: string, got: unknown): ApiError {
  return new ApiError(400, `expected ${expected} for ${param}, got ${describe(got)}`, 'invalid_request_error', param, 'invalid_value');
}

export type Json = Record<string, unknown>;

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A field that may be absent or null (OpenAI clients send null for "default"). */
function opt(body: Json, key: string): unknown {
  const v = body[key];
  return v === null ? undefined : v;
}

function num(body: Json, key: string, lo: number, hi: number, integer = false): number | undefined {
  const v = opt(body, key);
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi || (integer && !Number.isInteger(v)))
    throw badParam(key, `${integer ? 'an integer' : 'a number'} in [${lo}, ${hi}]`, v);
  return v;
}

function bool(body: Json, key: string): boolean | undefined {
  const v = opt(body, key);
  if (v !== undefined && typeof v !== 'boolean') throw badParam(key, 'a boolean', v);
  return v as boolean | undefined;
}

/** Fields the runtime has no way to honour, with the value that means "off". */
const UNSUPPORTED: Record<string, (v: unknown) => boolean> = {
  best_of: (v) => v === 1,
  echo: (v) => v === false,
  suffix: (v) => v === '',
  presence_penalty: (v) => v === 0,
  frequency_penalty: (v) => v === 0,
  repetition_penalty: (v) => v === 1,
  logit_bias: (v) => isObject(v) && Object.keys(v).length === 0,
  tools: (v) => Array.isArray(v) && v.length === 0,
  tool_choice: (v) => v === 'none',
  response_format: (v) => isObject(v) && v.type === 'text',
  structured_outputs: () => false,
  guided_json: () => false,
  guided_regex: () => false,
  guided_choice: () => false,
  guided_grammar: () => false,
};

/** The largest top-N of log-probs a request may ask for (vLLM's default max_logprobs). */
export const MAX_LOGPROBS = 20;

/** What both endpoints boil down to. */
export interface GenerationRequest {
  model: string | undefined;
  /** Text to tokenize, or token ids given directly (completions only). */
  prompt: { text: string } | { ids: number[] } | { messages: ChatMessage[] };
  /** undefined: the endpoint's default (completions 16, chat the rest of the context). */
  maxTokens: number | undefined;
  temperature: number;
  topP: number;
  topK: number;
  /** undefined: a fresh random seed, so unseeded sampling differs from call to call as in OpenAI's API. */
  seed: number | undefined;
  stop: string[];
  /** Top-N alternatives per token (0 = the sampled token's alone), or null: no log-probs. */
  logprobs: number | null;
  ignoreEos: boolean;
  stream: boolean;
  includeUsage: boolean;
}

export interface ChatMessage {
  role: string;
  content: string;
}

function common(body: Json): Omit<GenerationRequest, 'prompt' | 'maxTokens' | 'logprobs'> {
  for (const [key, isOff] of Object.entries(UNSUPPORTED)) {
    const v = opt(body, key);
    if (v !== undefined && !isOff(v)) throw new ApiError(400, `${key} is not supported by slipstream serve (got ${describe(v)})`, 'invalid_request_error', key, 'unsupported_parameter');
  }
  const model = opt(body, 'model');
  if (model !== undefined && typeof model !== 'string') throw badParam('model', 'a string', model);
  const n = opt(body, 'n');
  if (n !== undefined && n !== 1) throw new ApiError(400, `only n = 1 is supported, got ${describe(n)}`, 'invalid_request_error', 'n', 'unsupported_parameter');
  const stopRaw = opt(body, 'stop');
  let stop: string[] = [];
  if (typeof stopRaw === 'string') stop = [stopRaw];
  else if (Array.isArray(stopRaw) && stopRaw.every((s) => typeof s === 'string')) stop = stopRaw as string[];
  else if (stopRaw !== undefined) throw badParam('stop', 'a string or an array of strings', stopRaw);
  // An empty stop string would match at once and end every answer before it starts.
  stop = stop.filter((s) => s !== '');
  const streamOptions = opt(body, 'stream_options');
  if (streamOptions !== undefined && !isObject(streamOptions)) throw badParam('stream_options', 'an object', streamOptions);
  const stream = bool(body, 'stream') ?? false;
  const includeUsage = streamOptions ? (bool(streamOptions, 'include_usage') ?? false) : false;
  // vLLM spells "top-k off" as -1; the runtime as 0.
  const topK = num(body, 'top_k', -1, Number.MAX_SAFE_INTEGER, true) ?? 0;
  const topP = num(body, 'top_p', 0, 1) ?? 1;
  if (topP === 0) throw badParam('top_p', 'a number in (0, 1]', topP);
  return {
    model: model as string | undefined,
    temperature: num(body, 'temperature', 0, 2) ?? 1,
    topP,
    topK: topK < 0 ? 0 : topK,
    seed: num(body, 'seed', 0, Number.MAX_SAFE_INTEGER, true),
    stop,
    ignoreEos: bool(body, 'ignore_eos') ?? false,
    stream,
    includeUsage: stream && includeUsage,
  };
}

function maxTokensOf(body: Json, key: string): number | undefined {
  return num(body, key, 1, Number.MAX_SAFE_INTEGER, true);
}

/** POST /v1/completions. */
export function parseCompletion(body: unknown): GenerationRequest {
  if (!isObject(body)) throw badParam('body', 'a JSON object', body);
  const base = common(body);
  let p = body.prompt;
  // One prompt per request (n = 1 and no batching): a one-element list is the same prompt.
  if (Array.isArray(p) && p.length === 1 && (typeof p[0] === 'string' || Array.isArray(p[0]))) p = p[0];
  let prompt: GenerationRequest['prompt'];
  if (typeof p === 'string') prompt = { text: p };
  else if (Array.isArray(p) && p.length > 0 && p.every((t) => Number.isInteger(t) && t >= 0)) prompt = { ids: p as number[] };
  else throw badParam('prompt', 'a string, or an array of token ids (one prompt per request)', p);
  const logprobs = num(body, 'logprobs', 0, MAX_LOGPROBS, true);
  return { ...base, prompt, maxTokens: maxTokensOf(body, 'max_tokens'), logprobs: logprobs ?? null };
}

/** A message's text: a string, or OpenAI's list of parts of which only text parts are understood. */
function contentOf(m: Json, i: number): string {
  const c = m.content;
  if (typeof c === 'string') return c;
  if (c === null || c === undefined) return '';
  if (Array.isArray(c) && c.every((part) => isObject(part) && part.type === 'text' && typeof part.text === 'string')) return c.map((part) => (part as Json).text).join('');
  throw badParam(`messages[${i}].content`, 'a string or a list of text parts', c);
}

/** POST /v1/chat/completions. */
export function parseChat(body: unknown): GenerationRequest {
  if (!isObject(body)) throw badParam('body', 'a JSON object', body);
  const base = common(body);
  const raw = body.messages;
  if (!Array.isArray(raw) || raw.length === 0) throw badParam('messages', 'a non-empty array of messages', raw);
  const messages = raw.map((m, i): ChatMessage => {
    if (!isObject(m) || typeof m.role !== 'string' || m.role === '') throw badParam(`messages[${i}]`, 'an object with a role', m);
    return { role: m.role, content: contentOf(m, i) };
  });
  const wantLogprobs = bool(body, 'logprobs') ?? false;
  const top = num(body, 'top_logprobs', 0, MAX_LOGPROBS, true);
  if (top !== undefined && top > 0 && !wantLogprobs) throw badParam('top_logprobs', 'logprobs: true alongside it', body.logprobs ?? null);
  const maxTokens = maxTokensOf(body, 'max_completion_tokens') ?? maxTokensOf(body, 'max_tokens');
  return { ...base, prompt: { messages }, maxTokens, logprobs: wantLogprobs ? (top ?? 0) : null };
}
