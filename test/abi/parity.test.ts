/**
 * The same libslipstream through both hosts: Node (the addon) and Python (ctypes) must give the
 * same bytes for the same call, and the same sentence for the same mistake. A real Python
 * subprocess in the project's venv; nothing is mocked.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { SlipstreamError } from '../../core/src/errors/index.js';
import { quantizeSync, type QuantFormat, type QuantOptions } from '../../core/src/quant/index.js';
import { Tensor } from '../../core/src/tensor/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const python = path.join(root, '.venv', 'bin', 'python');

function runPython(script: string, dir: string): string {
  expect(existsSync(python), 'the Python venv is missing: run `node scripts/python-env.js` (npm test does)').toBe(true);
  const r = spawnSync(python, ['-c', script], { cwd: dir, encoding: 'utf8', env: { ...process.env, PYTHONPATH: path.join(root, 'adapters', 'torch') } });
  if (r.status !== 0) throw new Error(`python failed:\n${r.stderr}`);
  return r.stdout;
}

function heavyTailed(rows: number, cols: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  return Float32Array.from({ length: rows * cols }, () => {
    const u = next() - 0.5;
    return u * (next() < 0.02 ? 300 : 3);
  });
}

const CASES: { format: QuantFormat; options: QuantOptions; py: string }[] = [
  { format: 'NVFP4', options: {}, py: '' },
  { format: 'NVFP4', options: { rounding: 'stochastic', seed: 1234 }, py: 'rounding="stochastic", seed=1234' },
  { format: 'NVFP4_TJ2', options: {}, py: '' },
  { format: 'MXFP4', options: { rounding: 'stochastic', seed: 9 }, py: 'rounding="stochastic", seed=9' },
  { format: 'INT8', options: { granularity: 'block', block: [16, 32] }, py: 'granularity="block", block=(16, 32)' },
  { format: 'INT4', options: { groupSize: 64, fullIntRange: true }, py: 'group_size=64, full_int_range=True' },
  { format: 'FP8_E5M2', options: { granularity: 'group', groupSize: 32 }, py: 'granularity="group", group_size=32' },
];

describe('Node and Python reach the same library', () => {
  it.each(CASES)('quantize $format $options gives identical bytes', ({ format, options, py }) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'slip-abi-'));
    const rows = 48;
    const cols = 256;
    const x = heavyTailed(rows, cols, 77);
    writeFileSync(path.join(dir, 'x.bin'), Buffer.from(x.buffer));
    const q = quantizeSync(new Tensor('F32', [rows, cols], x), format, options);
    runPython(
      [
        'import numpy as np',
        'from slipstream_torch.quant import quantize',
        `x = np.fromfile("x.bin", dtype=np.float32).reshape(${rows}, ${cols})`,
        `q = quantize(x, "${format}"${py ? `, ${py}` : ''})`,
        'q["codes"].tofile("codes.bin"); q["scales"].tofile("scales.bin")',
        'if q["global"] is not None: q["global"].tofile("global.bin")',
      ].join('\n'),
      dir,
    );
    expect(Buffer.from(readFileSync(path.join(dir, 'codes.bin'))).equals(Buffer.from(q.codes.bytes()))).toBe(true);
    expect(Buffer.from(readFileSync(path.join(dir, 'scales.bin'))).equals(Buffer.from(q.scales.bytes()))).toBe(true);
    if (q.global) expect(Buffer.from(readFileSync(path.join(dir, 'global.bin'))).equals(Buffer.from(q.global.bytes()))).toBe(true);
  });

  it('reports the same mistake with the same sentence', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'slip-abi-'));
    let nodeMessage = '';
    try {
      quantizeSync(new Tensor('F32', [4, 24], new Float32Array(96)), 'NVFP4');
    } catch (e) {
      expect(e).toBeInstanceOf(SlipstreamError);
      nodeMessage = (e as Error).message;
    }
    expect(nodeMessage).toMatch(/16/);
    const out = runPython(
      [
        'import numpy as np',
        'from slipstream_torch import SlipstreamError',
        'from slipstream_torch.quant import quantize',
        'try:\n    quantize(np.zeros((4, 24), np.float32), "NVFP4")\nexcept SlipstreamError as e:\n    print(str(e))',
      ].join('\n'),
      dir,
    );
    expect(out.trim()).toBe(nodeMessage);
  });
});
