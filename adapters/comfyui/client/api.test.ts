/**
 * The ComfyUI client against an in-process stand-in of ComfyUI's server (real HTTP and a real
 * WebSocket on `ws`): ComfyUI itself cannot run here. The stand-in follows server.py's protocol as
 * ComfyUI 0.29 serves it (../../../../shared/research/comfyui.md §6): a canonical UUID prompt_id or
 * 400 invalid_prompt_id, node validation errors under node_errors, events only to the submitting
 * client id, `executing` with node null at the end, binary progress-text frames (type 3),
 * /history/{id} and /view.
 */
import { mkdtemp, readFile, readdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';

import { ComfyClient, decodeProgressText, runPrompt, type ComfyEvent } from './api.js';
import type { ApiWorkflow } from './workflow.js';

const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
const KNOWN = new Set(['UNETLoader', 'KSampler', 'SaveImage', 'SlipstreamAttention', 'FailNode']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

class StandIn {
  server!: Server;
  sockets = new Map<string, WebSocket>();
  history: Record<string, unknown> = {};
  queued: { client_id: string; prompt_id: string }[] = [];

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.#http(req, res));
    const wss = new WebSocketServer({ noServer: true });
    this.server.on('upgrade', (req, socket, head) => {
      const url = new URL(req.url!, 'http://x');
      if (url.pathname !== '/ws') return socket.destroy();
      wss.handleUpgrade(req, socket, head, (ws) => {
        const sid = url.searchParams.get('clientId') ?? 'minted';
        this.sockets.set(sid, ws);
        ws.send(JSON.stringify({ type: 'status', data: { status: { exec_info: { queue_remaining: 0 } }, sid } }));
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async #http(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): Promise<void> {
    const url = new URL(req.url!, 'http://x');
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'POST' && url.pathname === '/prompt') {
      let raw = '';
      for await (const chunk of req) raw += chunk;
      const body = JSON.parse(raw) as { prompt: ApiWorkflow; client_id: string; prompt_id: string };
      if (!UUID.test(body.prompt_id)) return json(400, { error: { type: 'invalid_prompt_id', message: 'Invalid prompt_id format', details: '' }, node_errors: {} });
      const bad = Object.entries(body.prompt).filter(([, n]) => !KNOWN.has(n.class_type));
      if (bad.length)
        return json(400, {
          error: { type: 'prompt_outputs_failed_validation', message: 'Prompt outputs failed validation', details: '' },
          node_errors: Object.fromEntries(bad.map(([id, n]) => [id, { class_type: n.class_type, errors: [{ message: 'Node does not exist', details: n.class_type }] }])),
        });
      this.queued.push({ client_id: body.client_id, prompt_id: body.prompt_id });
      json(200, { prompt_id: body.prompt_id, number: this.queued.length, node_errors: {} });
      setTimeout(() => this.#execute(body), 5);
      return;
    }
    if (req.method === 'GET' && url.pathname.startsWith('/history/')) {
      const id = url.pathname.slice('/history/'.length);
      return json(200, id in this.history ? { [id]: this.history[id] } : {});
    }
    if (req.method === 'GET' && url.pathname === '/view') {
      if (url.searchParams.get('type') !== 'output') return json(404, {});
      res.writeHead(200, { 'content-type': 'image/png' });
      return void res.end(Buffer.concat([PNG, Buffer.from(url.searchParams.get('filename')!)]));
    }
    json(404, {});
  }

  #execute(body: { prompt: ApiWorkflow; client_id: string; prompt_id: string }): void {
    const ws = this.sockets.get(body.client_id);
    const send = (type: string, data: Record<string, unknown>) => ws?.send(JSON.stringify({ type, data: { ...data, prompt_id: body.prompt_id } }));
    // Another client's prompt events must not disturb ours: the stand-in sends one to every socket.
    for (const [sid, other] of this.sockets)
      if (sid !== body.client_id) other.send(JSON.stringify({ type: 'executing', data: { node: null, prompt_id: 'someone-else' } }));
    send('execution_start', {});
    const outputs: Record<string, unknown> = {};
    for (const [id, node] of Object.entries(body.prompt)) {
      send('executing', { node: id, display_node: id });
      if (node.class_type === 'FailNode') {
        send('execution_error', { node_id: id, node_type: 'FailNode', exception_type: 'RuntimeError', exception_message: 'CUDA out of memory\n', executed: [], traceback: [] });
        return;
      }
      if (node.class_type === 'SlipstreamAttention') {
        const text = Buffer.from('sparsity 0.62');
        const head = Buffer.alloc(8);
        head.writeUInt32BE(3, 0);
        head.writeUInt32BE(id.length, 4);
        ws?.send(Buffer.concat([head, Buffer.from(id), text]));
        send('slipstream.stats', { node: 'SlipstreamAttention', sparsity: 0.62 });
      }
      if (node.class_type === 'KSampler') for (let v = 1; v <= 3; v++) send('progress', { value: v, max: 3, node: id });
      if (node.class_type === 'SaveImage') {
        outputs[id] = { images: [{ filename: `slip_${id}_00001_.png`, subfolder: '', type: 'output' }] };
        send('executed', { node: id, display_node: id, output: outputs[id] });
      }
    }
    this.history[body.prompt_id] = { prompt: [], outputs, status: { status_str: 'success', completed: true, messages: [] } };
    send('execution_success', {});
    send('executing', { node: null });
  }

  async stop(): Promise<void> {
    for (const ws of this.sockets.values()) ws.close();
    await new Promise((r) => this.server.close(r));
  }
}

const WORKFLOW: ApiWorkflow = {
  '1': { class_type: 'UNETLoader', inputs: { unet_name: 'wan.safetensors', weight_dtype: 'default' } },
  '2': { class_type: 'SlipstreamAttention', inputs: { model: ['1', 0] } },
  '3': { class_type: 'KSampler', inputs: { model: ['2', 0], seed: 1, steps: 3 } },
  '4': { class_type: 'SaveImage', inputs: { images: ['3', 0], filename_prefix: 'slip' } },
};

describe('ComfyUI client against a stand-in server', () => {
  const standIn = new StandIn();
  let server = '';
  beforeAll(async () => {
    server = await standIn.start();
  });
  afterAll(() => standIn.stop());

  it('queues under our UUID prompt and client ids, follows the socket and downloads the outputs', async () => {
    const other = new ComfyClient(server); // a second client connected at the same time
    await other.connect();
    const events: ComfyEvent[] = [];
    const out = await mkdtemp(path.join(tmpdir(), 'slip-comfy-'));
    const r = await runPrompt(server, WORKFLOW, out, (e) => events.push(e));
    other.close();
    expect(r.promptId).toMatch(UUID);
    const q = standIn.queued.at(-1)!;
    expect(q.prompt_id).toBe(r.promptId);
    expect(q.client_id).toMatch(UUID);
    expect(events.filter((e) => e.type === 'progress').map((e) => (e as { value: number }).value)).toEqual([1, 2, 3]);
    expect(events).toContainEqual({ type: 'text', node: '2', text: 'sparsity 0.62' });
    expect(events).toContainEqual({ type: 'custom', name: 'slipstream.stats', data: { node: 'SlipstreamAttention', sparsity: 0.62, prompt_id: r.promptId } });
    expect(r.files.map((f) => path.basename(f))).toEqual(['slip_4_00001_.png']);
    expect(await readFile(r.files[0])).toEqual(Buffer.concat([PNG, Buffer.from('slip_4_00001_.png')]));
    expect((await readdir(out)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('turns execution_error into an error naming the node', async () => {
    const failing = { ...WORKFLOW, '3': { class_type: 'FailNode', inputs: { model: ['2', 0] } } };
    const out = await mkdtemp(path.join(tmpdir(), 'slip-comfy-'));
    await expect(runPrompt(server, failing, out)).rejects.toThrow(/node 3 \(FailNode\) failed: RuntimeError: CUDA out of memory/);
    expect(await readdir(out)).toEqual([]);
  });

  it('reports validation errors per node', async () => {
    const bad = { ...WORKFLOW, '5': { class_type: 'NoSuchNode', inputs: {} } };
    await expect(runPrompt(server, bad, tmpdir())).rejects.toMatchObject({
      code: 'SLIP_E_REMOTE',
      message: expect.stringMatching(/answered 400: Prompt outputs failed validation; node 5 \(NoSuchNode\): Node does not exist/),
    });
  });

  it('says which server it could not reach', async () => {
    await expect(runPrompt('http://127.0.0.1:9', WORKFLOW, tmpdir())).rejects.toMatchObject({
      code: 'SLIP_E_REMOTE',
      message: expect.stringMatching(/ComfyUI at http:\/\/127\.0\.0\.1:9: cannot open/),
    });
  });
});

it('decodes binary progress-text frames and ignores the others', () => {
  const f = Buffer.concat([Buffer.from([0, 0, 0, 3, 0, 0, 0, 2]), Buffer.from('12hello')]);
  expect(decodeProgressText(f)).toEqual({ node: '12', text: 'hello' });
  expect(decodeProgressText(Buffer.from([0, 0, 0, 1, 0, 0, 0, 2]))).toBeNull();
  expect(decodeProgressText(Buffer.from([0, 0, 0, 3, 0, 0, 1, 0, 65]))).toBeNull();
});
