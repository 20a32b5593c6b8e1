import { SafetensorsReader } from '../../core/src/safetensors/index.js';
import { formatBytes } from '../../core/src/progress/index.js';
import { defineCommand } from '../command.js';

export const inspectCommand = defineCommand({
  name: 'inspect',
  summary: 'Lists the tensors of a safetensors file (dtype, shape, bytes) and a summary; reads only the header.',
  positionals: ['<file.safetensors>'],
  options: {
    json: { type: 'boolean', description: 'print JSON' },
  },
  async run(args, io) {
    const file = args.positionals[0];
    const reader = await SafetensorsReader.open(file);
    try {
      const infos = [...reader.infos()].sort((a, b) => a.name.localeCompare(b.name));
      const byDtype = new Map<string, { tensors: number; bytes: number; elements: number }>();
      let bytes = 0;
      for (const t of infos) {
        const d = byDtype.get(t.dtype) ?? { tensors: 0, bytes: 0, elements: 0 };
        d.tensors += 1;
        d.bytes += t.byteLength;
        d.elements += t.shape.reduce((a, b) => a * b, 1);
        byDtype.set(t.dtype, d);
        bytes += t.byteLength;
      }
      if (args.options.json) {
        const summary = { file, tensors: infos.length, bytes, byDtype: Object.fromEntries(byDtype), metadata: reader.metadata };
        const tensors = infos.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, bytes: t.byteLength }));
        io.out.write(JSON.stringify({ ...summary, tensorList: tensors }, null, 2) + '\n');
        return 0;
      }
      const nameWidth = Math.min(72, Math.max(4, ...infos.map((t) => t.name.length)));
      io.out.write(`${'name'.padEnd(nameWidth)}  ${'dtype'.padEnd(8)}  ${'shape'.padEnd(20)}  bytes\n`);
      for (const t of infos)
        io.out.write(`${t.name.padEnd(nameWidth)}  ${t.dtype.padEnd(8)}  ${`[${t.shape.join(', ')}]`.padEnd(20)}  ${formatBytes(t.byteLength)}\n`);
      io.out.write(`\n${infos.length} tensors, ${formatBytes(bytes)} of data\n`);
      for (const [dtype, d] of [...byDtype].sort()) io.out.write(`  ${dtype.padEnd(8)} ${String(d.tensors).padStart(5)} tensors  ${formatBytes(d.bytes).padStart(10)}  ${d.elements} elements\n`);
      const meta = Object.entries(reader.metadata);
      if (meta.length) {
        io.out.write('metadata:\n');
        for (const [k, v] of meta) io.out.write(`  ${k}: ${v.length > 120 ? `${v.slice(0, 117)}...` : v}\n`);
      }
      return 0;
    } finally {
      await reader.close();
    }
  },
});
