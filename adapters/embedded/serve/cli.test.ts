/** `slipstream serve` as a real process (bin/slipstream.js over dist/: run `npm run build:ts` first). */
import { spawn } from 'node:child_process';

import { expect, it } from 'vitest';

import { bin, root, startCli } from '../../../test/cli-process.js';

it('prints its URL, answers, and on SIGTERM finishes and exits 0', async () => {
  const { child, url, stderr } = await startCli(['serve', 'models/qwen3-mini', '--port', '0', '--max-concurrency', '1'], /qwen3-mini on (http:\/\/\S+) /);
  expect((await fetch(`${url}/health`)).status).toBe(200);
  // A request in flight when SIGTERM comes is finished, not cut: streamed, so its headers say it has started.
  const pending = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'Anchor', max_tokens: 16, temperature: 0, stream: true, stream_options: { include_usage: true } }) });
  expect(pending.status).toBe(200);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  const events = await pending.text();
  expect(events).toMatch(/"completion_tokens":\d+/);
  expect(events.endsWith('data: [DONE]\n\n')).toBe(true);
  expect(await exited).toBe(0);
  expect(stderr()).toContain('SIGTERM: finishing requests in flight');

  const bad = spawn(process.execPath, [bin, 'serve', 'models/qwen3-mini', '--max-concurrency', '0'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let badErr = '';
  bad.stderr.on('data', (d) => (badErr += d));
  expect(await new Promise((r) => bad.once('exit', r))).toBe(2);
  expect(badErr).toMatch(/expected an integer between 1 and 1024 for --max-concurrency/);
});
