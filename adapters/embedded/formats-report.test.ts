import { describe, expect, it } from 'vitest';

import { formatsReport, formatsTable } from './formats-report.js';

describe('the embedded formats report (npm start)', () => {
  it('measures every scheme against FP32 with the errors the formats imply', async () => {
    const rows = await formatsReport(8, 256, 128);
    expect(rows.map((r) => r.scheme)).toContain('NVFP4 W4A4');
    const byName = Object.fromEntries(rows.map((r) => [r.scheme, r]));
    expect(byName['FP32 (baseline)'].outputRelL1).toBe(0);
    // 8-bit formats keep about 8 bits, 4-bit about 4: the ordering must show in the error.
    expect(byName['W8A8 INT8'].weightRelL1).toBeLessThan(byName['W4A16 INT4 g128'].weightRelL1);
    expect(byName['NVFP4A16'].outputCosine).toBeGreaterThan(0.98);
    expect(byName['NVFP4A16'].weightBytes * 7).toBeLessThan(byName['FP32 (baseline)'].weightBytes);
    expect(formatsTable(rows).split('\n')).toHaveLength(rows.length + 2);
  });
});
