/** The sidecar's load test (./load.ts), short: 200 streaming clients for ~5 s, the upstream killed and restarted half way. */
import { expect, it } from 'vitest';

import { runSidecarLoad } from './load.js';

it('200 streaming clients through an upstream restart: whole answers or clean errors, no hangs, the sidecar stays up', async () => {
  const r = await runSidecarLoad({ clients: 200, durationMs: 5000, deadlineMs: 15_000 });
  expect(r.unclean.map((u) => `${u.outcome}: ${u.error}`)).toEqual([]);
  expect(r.outcomes.timeout).toBe(0);
  expect(r.outcomes.ok).toBeGreaterThan(200);
  expect(r.outcomes.error_event).toBeGreaterThan(0); // the kill landed mid-stream
  expect(r.okAfterRestart).toBeGreaterThan(0);
  expect(r.healthAfter).toBe(200);
  expect(r.inFlightAfter).toBe(0);
}, 60_000);
