import { describe, expect, it } from 'vitest';
import { percentile, summarize, timeIt } from './timer.js';

describe('summaries', () => {
  it('interpolates percentiles like numpy', () => {
    const s = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(percentile(s, 0.5)).toBe(5.5);
    expect(percentile(s, 0.1)).toBeCloseTo(1.9, 12);
    expect(percentile(s, 0.9)).toBeCloseTo(9.1, 12);
    expect(percentile([4], 0.9)).toBe(4);
  });

  it('reports median, mean, min, max', () => {
    const st = summarize([5, 1, 3, 100]);
    expect(st).toMatchObject({ iterations: 4, median: 4, mean: 27.25, min: 1, max: 100 });
    expect(st.samples).toEqual([5, 1, 3, 100]);
  });
});

describe('timeIt', () => {
  it('runs warm-up and timed calls of a sync fn', async () => {
    let calls = 0;
    const st = await timeIt(() => calls++, { warmup: 2, iterations: 5 });
    expect(calls).toBe(7);
    expect(st.iterations).toBe(5);
    expect(st.min).toBeGreaterThanOrEqual(0);
    expect(st.p10).toBeLessThanOrEqual(st.median);
    expect(st.median).toBeLessThanOrEqual(st.p90);
  });

  it('awaits async fns inside the timed span', async () => {
    const st = await timeIt(() => new Promise((r) => setTimeout(r, 5)), { warmup: 0, iterations: 3 });
    expect(st.min).toBeGreaterThanOrEqual(4);
  });

  it('keeps going until minTimeMs, bounded by maxIterations', async () => {
    const busy = () => {
      const end = performance.now() + 1;
      while (performance.now() < end);
    };
    const st = await timeIt(busy, { warmup: 0, iterations: 1, minTimeMs: 10 });
    const total = st.samples.reduce((s, x) => s + x, 0);
    // Stops at the first call that brings the timed total to 10 ms, however slow the machine.
    expect(total).toBeGreaterThanOrEqual(10);
    expect(total - st.samples[st.samples.length - 1]).toBeLessThan(10);
    expect(st.iterations).toBeGreaterThan(1);
    const capped = await timeIt(() => 0, { warmup: 0, iterations: 2, minTimeMs: 60_000, maxIterations: 50 });
    expect(capped.iterations).toBe(50);
  });

  it('runs beforeEach untimed before every timed call', async () => {
    const order: string[] = [];
    await timeIt(() => order.push('fn'), { warmup: 1, iterations: 2, beforeEach: () => order.push('setup') });
    expect(order).toEqual(['setup', 'fn', 'setup', 'fn', 'setup', 'fn']);
  });

  it('rejects bad options', async () => {
    await expect(timeIt(() => 0, { iterations: 0 })).rejects.toThrow('timeIt: expected an integer >= 1 for iterations, got 0');
    await expect(timeIt(() => 0, { minTimeMs: -1 })).rejects.toThrow(/minTimeMs/);
  });
});
