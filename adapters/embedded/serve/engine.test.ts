/** The generation helpers of `slipstream serve` that need no model: the slot limiter and log-softmax. */
import { describe, expect, it } from 'vitest';

import { BpeTokenizer } from '../../../core/src/tokenizer/index.js';
import { Limiter, logprobsOf } from './engine.js';

describe('Limiter', () => {
  it('runs max at once, hands slots over in arrival order, and drops a waiter whose signal aborts', async () => {
    const l = new Limiter(1);
    const first = await l.acquire();
    const order: string[] = [];
    const ctl = new AbortController();
    const gone = l.acquire(ctl.signal).then(() => order.push('gone'), () => order.push('gone: aborted'));
    const second = l.acquire().then((release) => (order.push('second'), release));
    expect([l.running, l.waiting]).toEqual([1, 2]);
    ctl.abort(new Error('client left'));
    await gone;
    expect(l.waiting).toBe(1);
    first();
    first(); // a second call is a no-op, not a second slot
    (await second)();
    expect(order).toEqual(['gone: aborted', 'second']);
    expect([l.running, l.waiting]).toEqual([0, 0]);
  });
});

describe('logprobsOf', () => {
  it('is log-softmax of the raw logits, with the top N most likely first', () => {
    const tok = BpeTokenizer.fromJson({ model: { type: 'BPE', vocab: { a: 0, b: 1, c: 2, d: 3 }, merges: [] }, pre_tokenizer: { type: 'ByteLevel' } });
    const logits = Float32Array.from([1, 3, 2, 3]);
    const z = Math.log(Math.exp(1) + 2 * Math.exp(3) + Math.exp(2));
    const lp = logprobsOf(logits, 2, 3, tok);
    expect(lp).toMatchObject({ id: 2, text: 'c', bytes: [99] });
    expect(lp.logprob).toBeCloseTo(2 - z, 12);
    // Ties keep vocabulary order.
    expect(lp.top.map((t) => t.id)).toEqual([1, 3, 2]);
    expect(lp.top[0]!.logprob).toBeCloseTo(3 - z, 12);
    expect(logprobsOf(logits, 0, 0, tok).top).toEqual([]);
  });
});
