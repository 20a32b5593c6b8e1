import { describe, expect, it } from 'vitest';

import { SlipstreamError } from '../errors/index.js';
import { ABI_VERSION, capabilities, loadBinding, native, setIsa } from './index.js';

describe('native loader', () => {
  it('loads the build and checks its ABI version', () => {
    expect(native().abiVersion()).toBe(ABI_VERSION);
    const caps = capabilities();
    expect(caps.numThreads).toBeGreaterThanOrEqual(1);
    expect(['portable', 'avx2', 'avx512', 'avx512vnni', 'amx']).toContain(caps.isaActive);
  });

  it('gives one error listing every candidate when nothing loads', () => {
    let err: unknown;
    try {
      loadBinding(['/nonexistent/a.node', '/nonexistent/b.node']);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SlipstreamError);
    expect((err as SlipstreamError).code).toBe('SLIP_E_NATIVE_MISSING');
    expect((err as Error).message).toContain('npm install');
    expect((err as Error).message).toContain('/nonexistent/a.node: not found');
    expect((err as Error).message).toContain('/nonexistent/b.node: not found');
  });

  it('passes typed arrays without copying', () => {
    const a = new Float32Array(64);
    const sub = a.subarray(10, 20);
    expect(native().dataAddress(sub) - native().dataAddress(a)).toBe(40n);
  });

  it('maps native failures to catalog codes with the native sentence', () => {
    const caps = capabilities();
    setIsa('portable');
    expect(capabilities().isaActive).toBe('portable');
    setIsa(caps.isaDetected);
    expect(capabilities().isaActive).toBe(caps.isaDetected);
    let err: unknown;
    try {
      native().setIsa(7);
    } catch (e) {
      err = e;
    }
    expect((err as { code: string }).code).toBe('SLIP_STATUS_INVALID_ARGUMENT');
    expect((err as Error).message).toBe('expected a slip_isa (0..4) for isa, got 7');
  });
});
