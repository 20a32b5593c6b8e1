/**
 * Shared by the TypeScript tests that run a long-lived `slipstream` command as a real process
 * (bin/slipstream.js over dist/): start it, wait for the URL it prints, keep its stderr for the
 * failure message.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const bin = path.join(root, 'bin/slipstream.js');

/** Starts `slipstream ...args` in the repo root; resolves with the first match group of
 *  `urlPattern` in its stdout, and stderr() gives what it has written there so far. */
export async function startCli(args: string[], urlPattern: RegExp): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  const child = spawn(process.execPath, [bin, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      const m = urlPattern.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
  });
  return { child, url, stderr: () => err };
}
