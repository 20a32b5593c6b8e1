/** What a measurement ran on, for the tables benchmarks write. */
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** The CPU's model name (Linux's /proc/cpuinfo, which names it even where os.cpus() does not). */
export function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
    if (line) return line.split(':')[1]!.trim();
  } catch {
    // not Linux: os.cpus() below
  }
  return os.cpus()[0]?.model ?? 'unknown CPU';
}
