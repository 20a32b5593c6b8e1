/**
 * A client of ComfyUI's HTTP and WebSocket API (server.py, protocol as ComfyUI 0.29 serves it):
 * POST /prompt with our own UUID prompt_id and client_id, the /ws socket's JSON events and binary
 * progress-text frames, /history/{id} for the outputs, /view for their bytes.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';

import WebSocket from 'ws';

import { SlipstreamError } from '../../../core/src/errors/index.js';
import { writeFileAtomic } from '../../../core/src/fs/index.js';
import type { ApiWorkflow } from './workflow.js';

export type ComfyEvent =
  | { type: 'executing'; node: string | null; promptId: string }
  | { type: 'progress'; node: string | null; value: number; max: number; promptId: string }
  | { type: 'executed'; node: string; promptId: string }
  | { type: 'cached'; nodes: string[]; promptId: string }
  | { type: 'text'; node: string; text: string }
  | { type: 'custom'; name: string; data: unknown };

export interface OutputFile {
  filename: string;
  subfolder: string;
  type: string;
}

function remote(server: string, message: string): SlipstreamError {
  return new SlipstreamError('SLIP_E_REMOTE', `ComfyUI at ${server}: ${message}`);
}

export class ComfyClient {
  readonly clientId = randomUUID();
  #socket: WebSocket | null = null;
  #listeners = new Set<(msg: { type: string; data: Record<string, unknown> } | { binary: Buffer }) => void>();

  constructor(readonly server: string) {
    if (!/^https?:\/\//.test(server)) throw new SlipstreamError('SLIP_E_USAGE', `expected an http(s) URL for --server, got ${JSON.stringify(server)}`);
  }

  #url(route: string): string {
    return new URL(route, this.server.endsWith('/') ? this.server : `${this.server}/`).toString();
  }

  async connect(): Promise<void> {
    const url = this.#url(`ws?clientId=${this.clientId}`).replace(/^http/, 'ws');
    const socket = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', (err) => reject(remote(this.server, `cannot open ${url}: ${err.message}`)));
    });
    socket.on('message', (raw, isBinary) => {
      const msg = isBinary ? { binary: raw as Buffer } : (JSON.parse(raw.toString()) as { type: string; data: Record<string, unknown> });
      for (const l of this.#listeners) l(msg);
    });
    this.#socket = socket;
  }

  close(): void {
    this.#socket?.close();
    this.#socket = null;
  }

  async #json(route: string, init?: RequestInit): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(this.#url(route), init);
    } catch (err) {
      throw remote(this.server, `cannot reach ${route}: ${(err as Error).message}`);
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    if (!res.ok) throw remote(this.server, `${init?.method ?? 'GET'} ${route} answered ${res.status}: ${describeError(body)}`);
    return body;
  }

  /** Queues prompt under a fresh UUID prompt id; returns it. */
  async queue(prompt: ApiWorkflow, promptId = randomUUID()): Promise<string> {
    const body = (await this.#json('prompt', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt, client_id: this.clientId, prompt_id: promptId }),
    })) as { prompt_id?: string };
    if (body.prompt_id !== promptId) throw remote(this.server, `queued under prompt id ${String(body.prompt_id)}, not ours (${promptId})`);
    return promptId;
  }

  /** Resolves when promptId finishes; rejects with the node that failed on execution_error. */
  wait(promptId: string, onEvent: (e: ComfyEvent) => void = () => {}): Promise<void> {
    if (!this.#socket) throw new SlipstreamError('SLIP_E_INTERNAL', 'ComfyClient.wait before connect');
    return new Promise((resolve, reject) => {
      const listener = (msg: { type: string; data: Record<string, unknown> } | { binary: Buffer }) => {
        if ('binary' in msg) {
          const text = decodeProgressText(msg.binary);
          if (text) onEvent({ type: 'text', ...text });
          return;
        }
        const d = msg.data ?? {};
        if (d.prompt_id !== undefined && d.prompt_id !== promptId) return;
        switch (msg.type) {
          case 'executing':
            onEvent({ type: 'executing', node: (d.node as string | null) ?? null, promptId });
            if (d.node === null) done(null);
            break;
          case 'progress':
            onEvent({ type: 'progress', node: (d.node as string | null) ?? null, value: Number(d.value), max: Number(d.max), promptId });
            break;
          case 'executed':
            onEvent({ type: 'executed', node: String(d.node), promptId });
            break;
          case 'execution_cached':
            onEvent({ type: 'cached', nodes: (d.nodes as string[]) ?? [], promptId });
            break;
          case 'execution_success':
            done(null);
            break;
          case 'execution_error':
            done(
              remote(
                this.server,
                `node ${String(d.node_id)} (${String(d.node_type)}) failed: ${String(d.exception_type)}: ${String(d.exception_message).trim()}`,
              ),
            );
            break;
          case 'execution_interrupted':
            done(remote(this.server, `prompt ${promptId} was interrupted at node ${String(d.node_id)} (${String(d.node_type)})`));
            break;
          default:
            if (msg.type.startsWith('slipstream.')) onEvent({ type: 'custom', name: msg.type, data: d });
        }
      };
      const closed = () => done(remote(this.server, `the socket closed before prompt ${promptId} finished`));
      const done = (err: Error | null) => {
        this.#listeners.delete(listener);
        this.#socket?.off('close', closed);
        if (err) reject(err);
        else resolve();
      };
      this.#listeners.add(listener);
      this.#socket!.once('close', closed);
    });
  }

  async outputs(promptId: string): Promise<OutputFile[]> {
    const hist = (await this.#json(`history/${promptId}`)) as Record<string, { outputs?: Record<string, Record<string, unknown>> }>;
    const entry = hist[promptId];
    if (!entry) throw remote(this.server, `no history for prompt ${promptId}`);
    const files: OutputFile[] = [];
    for (const out of Object.values(entry.outputs ?? {}))
      for (const list of Object.values(out))
        if (Array.isArray(list))
          for (const f of list as Partial<OutputFile>[])
            if (typeof f?.filename === 'string') files.push({ filename: f.filename, subfolder: f.subfolder ?? '', type: f.type ?? 'output' });
    return files;
  }

  /** Downloads one output into dir (a temporary name, then renamed); returns its path. */
  async download(file: OutputFile, dir: string): Promise<string> {
    const q = new URLSearchParams({ filename: file.filename, subfolder: file.subfolder, type: file.type });
    let res: Response;
    try {
      res = await fetch(this.#url(`view?${q}`));
    } catch (err) {
      throw remote(this.server, `cannot download ${file.filename}: ${(err as Error).message}`);
    }
    if (!res.ok) throw remote(this.server, `GET /view ${file.filename} answered ${res.status}`);
    const target = path.join(dir, path.basename(file.filename));
    await writeFileAtomic(target, Buffer.from(await res.arrayBuffer()));
    return target;
  }
}

/** Binary frame type 3 (progress text): node id length, node id, UTF-8 text. */
export function decodeProgressText(frame: Buffer): { node: string; text: string } | null {
  if (frame.length < 8 || frame.readUInt32BE(0) !== 3) return null;
  const n = frame.readUInt32BE(4);
  if (8 + n > frame.length) return null;
  return { node: frame.subarray(8, 8 + n).toString('utf8'), text: frame.subarray(8 + n).toString('utf8') };
}

function describeError(body: unknown): string {
  if (typeof body !== 'object' || body === null) return String(body).slice(0, 300);
  const b = body as { error?: { message?: string; details?: string }; node_errors?: Record<string, { class_type?: string; errors?: { message?: string; details?: string }[] }> };
  const parts = [b.error?.message, b.error?.details].filter(Boolean) as string[];
  for (const [id, ne] of Object.entries(b.node_errors ?? {}))
    for (const e of ne.errors ?? []) parts.push(`node ${id} (${ne.class_type ?? '?'}): ${e.message ?? ''}${e.details ? ` (${e.details})` : ''}`);
  return parts.join('; ') || JSON.stringify(body).slice(0, 300);
}

export interface RunResult {
  promptId: string;
  files: string[];
}

/** Queues prompt, follows it on the socket, downloads its outputs into outDir. */
export async function runPrompt(server: string, prompt: ApiWorkflow, outDir: string, onEvent?: (e: ComfyEvent) => void): Promise<RunResult> {
  const client = new ComfyClient(server);
  await client.connect();
  try {
    const promptId = randomUUID();
    const finished = client.wait(promptId, onEvent);
    finished.catch(() => {}); // awaited below; a failed queue() closes the socket, which rejects it
    await client.queue(prompt, promptId);
    await finished;
    const files = [];
    for (const f of await client.outputs(promptId)) files.push(await client.download(f, outDir));
    return { promptId, files };
  } finally {
    client.close();
  }
}
