import { describe, expect, it } from 'vitest';
import { createProgress, formatBytes, formatDuration, type ProgressStream } from './progress.js';

function fakeStream(isTTY: boolean, columns?: number): ProgressStream & { chunks: string[] } {
  const chunks: string[] = [];
  return { isTTY, columns, chunks, write: (s: string) => chunks.push(s) };
}

function fakeClock(): { now: () => number; advance: (ms: number) => void } {
  let t = 0;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('non-TTY output', () => {
  it('prints one line per 10% and a final summary', () => {
    const stream = fakeStream(false);
    const clock = fakeClock();
    const p = createProgress({ total: 100, label: 'quantize', stream, now: clock.now });
    for (let i = 0; i < 100; i++) {
      clock.advance(100);
      p.tick();
    }
    p.finish();
    expect(stream.chunks).toHaveLength(10);
    expect(stream.chunks[0]).toBe('quantize   10%  10/100  10.0 it/s  ETA 9s\n');
    expect(stream.chunks[8]).toBe('quantize   90%  90/100  10.0 it/s  ETA 1s\n');
    expect(stream.chunks[9]).toBe('quantize: done, 100 in 10s (10.0 it/s)\n');
  });

  it('prints a line per interval when the total is unknown', () => {
    const stream = fakeStream(false);
    const clock = fakeClock();
    const p = createProgress({ stream, now: clock.now, intervalMs: 1000, unit: 'steps' });
    for (let i = 0; i < 25; i++) {
      clock.advance(100);
      p.tick(2);
    }
    expect(stream.chunks).toEqual(['20 steps  20.0 steps/s  1s\n', '40 steps  20.0 steps/s  2s\n']);
  });
});

describe('TTY output', () => {
  it('redraws one line in place, throttled, and ends it on finish', () => {
    const stream = fakeStream(true);
    const clock = fakeClock();
    const p = createProgress({ total: 4, stream, now: clock.now, redrawMs: 100 });
    clock.advance(50);
    p.tick(); // first draw
    clock.advance(50);
    p.tick(); // throttled
    clock.advance(100);
    p.tick();
    p.finish();
    expect(stream.chunks).toEqual([
      '\r[#####...............]   25%  1/4  20.0 it/s  ETA 0s\x1b[K',
      '\r[###############.....]   75%  3/4  15.0 it/s  ETA 0s\x1b[K',
      '\rdone, 3 in 0s (15.0 it/s)\x1b[K\n',
    ]);
  });

  it('fits the line to the terminal width and formats bytes', () => {
    const stream = fakeStream(true, 30);
    const clock = fakeClock();
    const p = createProgress({ total: 4 * 1024 ** 3, unit: 'bytes', label: 'write model.safetensors', stream, now: clock.now });
    clock.advance(2000);
    p.update(1024 ** 3);
    const line = stream.chunks[0];
    expect(line.startsWith('\r')).toBe(true);
    expect(line.replace('\r', '').replace('\x1b[K', '')).toHaveLength(29);
    const wide = fakeStream(true, 200);
    const q = createProgress({ total: 4 * 1024 ** 3, unit: 'bytes', stream: wide, now: clock.now });
    clock.advance(2000);
    q.update(1024 ** 3);
    expect(wide.chunks[0]).toContain('1.0 GiB/4.0 GiB  512.0 MiB/s  ETA 6s');
  });
});

describe('disabled and edge cases', () => {
  it('prints nothing when disabled but still counts', () => {
    const stream = fakeStream(true);
    const p = createProgress({ total: 10, stream, enabled: false });
    p.tick(5);
    p.finish();
    expect(stream.chunks).toEqual([]);
    expect(p.done).toBe(5);
  });

  it('ignores updates after finish and repeated finish', () => {
    const stream = fakeStream(false);
    const p = createProgress({ total: 0, stream, now: () => 0 });
    p.finish();
    p.tick();
    p.finish();
    expect(stream.chunks).toEqual(['done, 0 in 0s (0.0 it/s)\n']);
  });

  it('rejects a bad total', () => {
    expect(() => createProgress({ total: -1, stream: fakeStream(false) })).toThrow('progress: expected a non-negative total, got -1');
  });

  it('formats durations and sizes', () => {
    expect(formatDuration(59.4)).toBe('59s');
    expect(formatDuration(187)).toBe('3m07s');
    expect(formatDuration(3720)).toBe('1h02m');
    expect(formatDuration(Infinity)).toBe('?');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
  });
});
