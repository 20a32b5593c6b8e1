/**
 * The stand-in vLLM (adapters/vllm/sidecar/stand-in-vllm.ts) as a process of its own, for
 * bench/sidecar.ts: `node dist/bench/sidecar-upstream.js <delay-ms>` prints its URL on one line
 * and serves until killed. Its own process, so that the client, the sidecar and the upstream do
 * not share an event loop, as in a deployment.
 */
import { StandInVllm } from '../adapters/vllm/sidecar/stand-in-vllm.js';

const upstream = new StandInVllm({ delayMs: Number(process.argv[2] ?? 0), record: false });
process.stdout.write(`${await upstream.start()}\n`);
