/** `slipstream sidecar` as a real process (bin/slipstream.js over dist/, built by npm install). */
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import { expect, it } from 'vitest';

import { bin, startCli } from '../../../test/cli-process.js';

it('serves until SIGTERM, then drains and exits 0', async () => {
  const upstream = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ object: 'list', data: [{ id: 'm', object: 'model' }] }));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const up = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const { child, url, stderr } = await startCli(['sidecar', '--upstream', up, '--port', '0'], /on (http:\/\/[^ ]+) ->/);
  const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
  expect(models.data[0].id).toBe('m');
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  expect(await exited).toBe(0);
  expect(stderr()).toContain('SIGTERM: draining requests in flight');
  await new Promise((r) => upstream.close(r));

  const bad = spawn(process.execPath, [bin, 'sidecar', '--upstream', 'localhost:8000'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let badErr = '';
  bad.stderr.on('data', (d) => (badErr += d));
  expect(await new Promise((r) => bad.once('exit', r))).toBe(2);
  expect(badErr).toMatch(/expected an http\(s\) URL for --upstream/);
});
