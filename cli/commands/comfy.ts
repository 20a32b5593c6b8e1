import { runPrompt, type ComfyEvent } from '../../adapters/comfyui/client/api.js';
import { installPack } from '../../adapters/comfyui/client/install.js';
import { accelerate, checkApiWorkflow, parseProfile, workflowFormat, type ApiWorkflow } from '../../adapters/comfyui/client/workflow.js';
import { SlipstreamError } from '../../core/src/errors/index.js';
import { writeFileAtomic } from '../../core/src/fs/index.js';
import { readJsonFile } from '../../core/src/schema/index.js';
import { type CliIO, defineCommand } from '../command.js';

function usage(message: string): SlipstreamError {
  return new SlipstreamError('SLIP_E_USAGE', `${message} (see \`slipstream help comfy\`)`);
}

function progress(io: CliIO, prompt: ApiWorkflow): (e: ComfyEvent) => void {
  const ids = Object.keys(prompt);
  const done = new Set<string>();
  const bar = (node: string | null, extra = '') => {
    const n = done.size;
    const filled = Math.round((20 * n) / ids.length);
    const name = node ? `${node} ${prompt[node]?.class_type ?? ''}` : 'done';
    const line = `[${'#'.repeat(filled)}${' '.repeat(20 - filled)}] ${n}/${ids.length} ${name}${extra}`;
    io.err.write(io.err.isTTY ? `\r${line.padEnd(78)}` : `${line}\n`);
  };
  return (e) => {
    if (e.type === 'executing') {
      if (e.node !== null) done.add(e.node);
      bar(e.node);
      if (e.node === null && io.err.isTTY) io.err.write('\n');
    } else if (e.type === 'cached') e.nodes.forEach((n) => done.add(n));
    else if (e.type === 'progress' && e.node) bar(e.node, ` step ${e.value}/${e.max}`);
    else if (e.type === 'text') io.err.write(`${io.err.isTTY ? '\n' : ''}node ${e.node}: ${e.text}\n`);
  };
}

export const comfyCommand = defineCommand({
  name: 'comfy',
  summary: 'ComfyUI: run a workflow on a server, add Slipstream\'s nodes to a workflow, or install the node pack.',
  positionals: ['<run|accelerate|install>', '<workflow.json | ComfyUI dir>'],
  options: {
    server: { type: 'string', description: 'run: the ComfyUI server', default: 'http://127.0.0.1:8188' },
    'output-dir': { type: 'string', description: 'run: where the outputs are downloaded', default: 'out/comfyui' },
    out: { type: 'string', description: 'accelerate: the workflow to write (API or UI format, as the input)' },
    profile: { type: 'string', description: 'accelerate: JSON of plugin parameters by plugin id, e.g. {"sparse-attention": {"topk": 0.3}}' },
    library: { type: 'string', description: 'install: libslipstream.so to ship (default: this build\'s)' },
  },
  async run(args, io) {
    const [action, target] = args.positionals;
    const o = args.options;
    if (action === 'run') {
      const workflow = await readJsonFile(target);
      if (workflowFormat(workflow, target) !== 'api')
        throw new SlipstreamError('SLIP_E_SCHEMA', `${target}: a UI-format workflow; /prompt takes the API format (in ComfyUI: Workflow > Export (API))`);
      checkApiWorkflow(workflow as ApiWorkflow, target);
      const r = await runPrompt(o.server!, workflow as ApiWorkflow, o['output-dir']!, progress(io, workflow as ApiWorkflow));
      io.out.write(`prompt ${r.promptId}: ${r.files.length} output(s)\n${r.files.map((f) => `  ${f}\n`).join('')}`);
      return 0;
    }
    if (action === 'accelerate') {
      if (!o.out) throw usage('expected --out <new.json>');
      const profile = o.profile ? parseProfile(await readJsonFile(o.profile), o.profile) : undefined;
      const result = accelerate(await readJsonFile(target), profile, target);
      await writeFileAtomic(o.out, `${JSON.stringify(result, null, 2)}\n`);
      io.out.write(`wrote ${o.out}\n`);
      return 0;
    }
    if (action === 'install') {
      const where = await installPack(target, o.library);
      io.out.write(`installed the Slipstream node pack in ${where}\n`);
      return 0;
    }
    throw usage(`expected run, accelerate or install, got ${JSON.stringify(action)}`);
  },
});
