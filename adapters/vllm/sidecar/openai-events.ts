/**
 * What the sidecar reads from OpenAI-style bodies without changing them: token events in an SSE
 * stream (for TTFT and inter-token latency), and vLLM's structured-output parameters.
 */

/** Counts `data:` events that carry generated text in a chunk of SSE bytes; keeps partial lines. */
export class SseTokenCounter {
  #rest = '';
  tokens = 0;
  done = false;
  usageTokens: number | null = null;

  /** Token events completed by this chunk. */
  push(chunk: string): number {
    const lines = (this.#rest + chunk).split('\n');
    this.#rest = lines.pop() ?? '';
    let n = 0;
    for (const line of lines) {
      if (!line.startsWith('data:')) continue;
      const data = line.slice(5).trim();
      if (data === '[DONE]') {
        this.done = true;
        continue;
      }
      try {
        const ev = JSON.parse(data) as { choices?: { delta?: { content?: string }; text?: string }[]; usage?: { completion_tokens?: number } };
        if (ev.usage?.completion_tokens !== undefined) this.usageTokens = ev.usage.completion_tokens;
        if ((ev.choices ?? []).some((c) => (c.delta?.content ?? c.text ?? '') !== '')) n++;
      } catch {
        // not JSON: not a token event
      }
    }
    this.tokens += n;
    return n;
  }
}

const GUIDED: Record<string, string> = {
  guided_json: 'json',
  guided_regex: 'regex',
  guided_choice: 'choice',
  guided_grammar: 'grammar',
  guided_whitespace_pattern: 'whitespace_pattern',
};

/**
 * vLLM 0.12 removed guided_* for one `structured_outputs` object: returns the body with them moved
 * there (guided_decoding_backend dropped: the server picks its backend), or null if it has none.
 */
export function translateGuided(body: Record<string, unknown>): Record<string, unknown> | null {
  const keys = Object.keys(body).filter((k) => k in GUIDED || k === 'guided_decoding_backend');
  if (keys.length === 0) return null;
  const out: Record<string, unknown> = {};
  const structured: Record<string, unknown> = { ...((body.structured_outputs as Record<string, unknown>) ?? {}) };
  for (const [k, v] of Object.entries(body)) {
    if (k in GUIDED) structured[GUIDED[k]] = v;
    else if (k !== 'guided_decoding_backend') out[k] = v;
  }
  if (Object.keys(structured).length) out.structured_outputs = structured;
  return out;
}

/** True when version (e.g. "0.12.1", "0.11.0rc2") is at least major.minor. */
export function atLeast(version: string | null, major: number, minor: number): boolean {
  const m = /^v?(\d+)\.(\d+)/.exec(version ?? '');
  if (!m) return false;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a > major || (a === major && b >= minor);
}
