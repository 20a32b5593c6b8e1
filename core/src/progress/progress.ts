import { performance } from 'node:perf_hooks';
import { SlipstreamError } from '../errors/index.js';

/** What the bar writes to: process.stderr, or any object with write() (tests). */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  /** Units of work in all; leave out when unknown (no percent, no ETA). */
  total?: number;
  label?: string;
  /** 'bytes' prints sizes (KiB, MiB, ...); any other word is printed after counts and rates. */
  unit?: string;
  /** Default process.stderr, so that progress never mixes with a command's stdout output. */
  stream?: ProgressStream;
  /** false: print nothing (quiet mode, tests, nested work). Default true. */
  enabled?: boolean;
  /** Clock in ms; tests pass a fake one. */
  now?: () => number;
  /** TTY: least time between redraws; default 100 ms. */
  redrawMs?: number;
  /** Non-TTY: a line each time this many more percent are done; default 10. */
  everyPercent?: number;
  /** Non-TTY with unknown total: least time between lines; default 10 s. */
  intervalMs?: number;
}

const BAR_WIDTH = 20;

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

/**
 * A one-line progress report. On a TTY the line is redrawn in place (at most every redrawMs);
 * elsewhere (CI logs, pipes) a line is printed only every `everyPercent`, so logs stay short.
 */
export class Progress {
  private readonly stream: ProgressStream;
  private readonly now: () => number;
  private readonly start: number;
  private readonly tty: boolean;
  private doneCount = 0;
  private lastDraw = -Infinity;
  private lastStep = 0;
  private finished = false;

  constructor(private readonly options: ProgressOptions = {}) {
    const { total } = options;
    if (total !== undefined && !(Number.isFinite(total) && total >= 0)) {
      throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `progress: expected a non-negative total, got ${total}`);
    }
    this.stream = options.stream ?? process.stderr;
    this.now = options.now ?? (() => performance.now());
    this.tty = this.stream.isTTY === true;
    this.start = this.now();
    if (options.everyPercent !== undefined && !(options.everyPercent > 0 && options.everyPercent <= 100)) {
      throw new SlipstreamError('SLIP_E_INVALID_ARGUMENT', `progress: expected everyPercent in (0, 100], got ${options.everyPercent}`);
    }
  }

  get done(): number {
    return this.doneCount;
  }

  private get enabled(): boolean {
    return this.options.enabled !== false;
  }

  tick(n = 1): void {
    this.update(this.doneCount + n);
  }

  update(done: number): void {
    if (this.finished) return;
    this.doneCount = done;
    if (!this.enabled) return;
    const t = this.now();
    if (this.tty) {
      if (t - this.lastDraw >= (this.options.redrawMs ?? 100)) this.draw(t);
      return;
    }
    const { total } = this.options;
    if (total !== undefined) {
      const every = this.options.everyPercent ?? 10;
      const step = total === 0 ? Infinity : Math.floor((Math.min(done, total) / total) * 100 / every);
      if (step > this.lastStep && done < total) {
        this.lastStep = step;
        this.stream.write(`${this.line(t)}\n`);
      }
    } else if (t - Math.max(this.lastDraw, this.start) >= (this.options.intervalMs ?? 10_000)) {
      this.lastDraw = t;
      this.stream.write(`${this.line(t)}\n`);
    }
  }

  /** Prints the final line (ending the TTY line) and stops further output. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (!this.enabled) return;
    const t = this.now();
    const elapsed = (t - this.start) / 1000;
    const label = this.options.label === undefined ? '' : `${this.options.label}: `;
    const text = `${label}done, ${this.amount(this.doneCount)} in ${formatDuration(elapsed)} (${this.rate(elapsed)})`;
    this.stream.write(this.tty ? `\r${this.fit(text)}\x1b[K\n` : `${text}\n`);
  }

  private draw(t: number): void {
    this.lastDraw = t;
    this.stream.write(`\r${this.fit(this.line(t))}\x1b[K`);
  }

  private fit(text: string): string {
    const cols = this.stream.columns;
    return cols !== undefined && cols > 1 && text.length > cols - 1 ? text.slice(0, cols - 1) : text;
  }

  private amount(n: number): string {
    const unit = this.options.unit;
    if (unit === 'bytes') return formatBytes(n);
    return unit === undefined ? String(n) : `${n} ${unit}`;
  }

  private rate(elapsedS: number): string {
    const r = elapsedS > 0 ? this.doneCount / elapsedS : 0;
    const unit = this.options.unit;
    if (unit === 'bytes') return `${formatBytes(r)}/s`;
    return `${r >= 100 ? r.toFixed(0) : r.toFixed(1)} ${unit ?? 'it'}/s`;
  }

  private line(t: number): string {
    const elapsed = (t - this.start) / 1000;
    const { total, label } = this.options;
    const parts: string[] = [];
    if (label !== undefined) parts.push(label);
    if (total === undefined) {
      parts.push(this.amount(this.doneCount), this.rate(elapsed), formatDuration(elapsed));
      return parts.join('  ');
    }
    const frac = total === 0 ? 1 : Math.min(1, this.doneCount / total);
    const pct = `${Math.floor(frac * 100)}%`.padStart(4);
    if (this.tty) {
      const filled = Math.round(frac * BAR_WIDTH);
      parts.push(`[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}]`);
    }
    const count = this.options.unit === 'bytes' ? `${formatBytes(this.doneCount)}/${formatBytes(total)}` : `${this.doneCount}/${total}`;
    const speed = elapsed > 0 ? this.doneCount / elapsed : 0;
    const eta = speed > 0 ? formatDuration((total - Math.min(this.doneCount, total)) / speed) : '?';
    parts.push(pct, count, this.rate(elapsed), `ETA ${eta}`);
    return parts.join('  ');
  }
}

export function createProgress(options: ProgressOptions = {}): Progress {
  return new Progress(options);
}
