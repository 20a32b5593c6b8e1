import { describe, expect, it } from 'vitest';
import { SlipstreamError } from '../errors/index.js';
import { DTYPES, DTYPE_INFO, dtypeFromNative, dtypeInfo, isDType } from './dtype.js';
import { Tensor } from './tensor.js';
import { validateShape } from './shape.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SlipstreamError);
    return (e as SlipstreamError).code;
  }
  throw new Error('expected a throw');
}

describe('dtype table', () => {
  it('numbers dtypes as enum slip_dtype does', () => {
    expect(DTYPES).toEqual(['F32', 'F16', 'BF16', 'F64', 'F8_E4M3', 'F8_E5M2', 'I8', 'U8', 'I32', 'I64']);
    DTYPES.forEach((d, i) => expect(DTYPE_INFO[d].nativeId).toBe(i));
    expect(dtypeFromNative(9)).toBe('I64');
    expect(() => dtypeFromNative(10)).toThrow(/0\.\.9/);
  });

  it('matches sizes to array element sizes', () => {
    for (const d of DTYPES) expect(DTYPE_INFO[d].array.BYTES_PER_ELEMENT).toBe(DTYPE_INFO[d].size);
    expect(DTYPE_INFO.BF16.array).toBe(Uint16Array);
    expect(DTYPE_INFO.F8_E4M3.array).toBe(Uint8Array);
    expect(DTYPE_INFO.I64.array).toBe(BigInt64Array);
  });

  it('lists the known dtypes when one is unknown', () => {
    expect(isDType('BOOL')).toBe(false);
    expect(isDType('toString')).toBe(false);
    expect(() => dtypeInfo('BOOL')).toThrow('expected one of F32, F16, BF16, F64, F8_E4M3, F8_E5M2, I8, U8, I32, I64 for dtype, got "BOOL"');
  });
});

describe('shape validation', () => {
  it('names the bad entry', () => {
    expect(() => validateShape([2, -3])).toThrow('expected a non-negative integer for shape[1], got -3');
    expect(() => validateShape([1.5])).toThrow('shape[0], got 1.5');
    expect(() => validateShape(['2'])).toThrow('shape[0], got "2"');
    expect(() => validateShape(3)).toThrow('expected an array of non-negative integers for shape, got 3');
    expect(() => validateShape([2 ** 30, 2 ** 30, 2 ** 30])).toThrow(/at most 2\^53-1 elements/);
    expect(codeOf(() => validateShape([NaN]))).toBe('SLIP_E_INVALID_ARGUMENT');
  });

  it('returns a frozen copy', () => {
    const input = [2, 3];
    const s = validateShape(input);
    input[0] = 9;
    expect(s).toEqual([2, 3]);
    expect(Object.isFrozen(s)).toBe(true);
  });
});

describe('Tensor', () => {
  it('makes zeros of every dtype with the right view', () => {
    for (const d of DTYPES) {
      const t = Tensor.zeros(d, [2, 3]);
      expect(t.data).toBeInstanceOf(DTYPE_INFO[d].array);
      expect(t.numel).toBe(6);
      expect(t.byteLength).toBe(6 * DTYPE_INFO[d].size);
    }
    expect(Tensor.zeros('F32', []).numel).toBe(1);
    expect(Tensor.zeros('F32', [4, 0]).numel).toBe(0);
  });

  it('rejects data of the wrong kind or length', () => {
    expect(codeOf(() => new Tensor('F16', [2], new Float32Array(2) as never))).toBe('SLIP_E_DTYPE_MISMATCH');
    expect(() => new Tensor('F32', [2, 2], new Float32Array(3))).toThrow('expected 4 elements for F32 [2, 2], got 3');
    expect(() => new Tensor('U8', [2], new Uint8ClampedArray(2) as never)).toThrow(/Uint8Array.*Uint8ClampedArray/);
    expect(new Tensor('U8', [2], Buffer.from([1, 2])).data[1]).toBe(2);
  });

  it('converts values on fromArray and checks integer ranges', () => {
    expect(Array.from(Tensor.fromArray('F16', [3], [1, -2, 0.5]).data)).toEqual([0x3c00, 0xc000, 0x3800]);
    expect(Array.from(Tensor.fromArray('BF16', [1], [1]).data)).toEqual([0x3f80]);
    expect(Array.from(Tensor.fromArray('F8_E4M3', [1], [448]).data)).toEqual([0x7e]);
    expect(Array.from(Tensor.fromArray('I64', [2], [3n, -4]).data)).toEqual([3n, -4n]);
    expect(() => Tensor.fromArray('I8', [2], [1, 300])).toThrow('expected an integer in [-128, 127] for values[1], got 300');
    expect(() => Tensor.fromArray('I32', [1], [0.5])).toThrow(/values\[0\], got 0.5/);
    expect(() => Tensor.fromArray('I64', [1], [2 ** 60])).toThrow(/values\[0\]/);
    expect(() => Tensor.fromArray('F32', [1], [1n])).toThrow('expected a number for values[0], got 1n');
    expect(() => Tensor.fromArray('F32', [2, 2], [1, 2, 3])).toThrow('expected 4 values for F32 [2, 2], got 3');
  });

  it('views aligned bytes without copying and copies unaligned ones', () => {
    const buf = new Uint8Array(4 * 3 + 1);
    new Float32Array(buf.buffer, 0, 3).set([1, 2, 3]);
    const aligned = Tensor.fromBytes('F32', [3], buf.subarray(0, 12));
    expect(aligned.data.buffer).toBe(buf.buffer);
    expect(Array.from(aligned.data)).toEqual([1, 2, 3]);

    buf.copyWithin(1, 0, 12);
    const unaligned = Tensor.fromBytes('F32', [3], buf.subarray(1, 13));
    expect(unaligned.data.buffer).not.toBe(buf.buffer);
    expect(Array.from(unaligned.data)).toEqual([1, 2, 3]);

    expect(() => Tensor.fromBytes('F32', [2, 2], new Uint8Array(12))).toThrow('expected 16 bytes for F32 [2, 2], got 12');
  });

  it('shares memory in bytes() and toNative()', () => {
    const t = Tensor.fromArray('I32', [2, 2], [1, 2, 3, 4]);
    const b = t.bytes();
    expect(b.buffer).toBe(t.data.buffer);
    expect(b.byteLength).toBe(16);
    const n = t.toNative();
    expect(n).toEqual({ data: t.data, dtype: 8, shape: [2, 2] });
    expect(n.data).toBe(t.data);
    expect(codeOf(() => Tensor.zeros('F32', [1, 1, 1, 1, 1, 1, 1, 1, 1]).toNative())).toBe('SLIP_E_UNSUPPORTED');
  });

  it('reshapes as a view', () => {
    const t = Tensor.fromArray('F32', [2, 3], [1, 2, 3, 4, 5, 6]);
    const r = t.reshape([3, 2]);
    expect(r.data).toBe(t.data);
    expect(() => t.reshape([4])).toThrow('cannot reshape F32 [2, 3] (6 elements) to [4]');
  });

  it('converts every dtype to float32', () => {
    const values = [0, 1, -2, 0.5, 3];
    for (const d of DTYPES) {
      const vals = d === 'U8' ? [0, 1, 2, 0, 3] : DTYPE_INFO[d].kind === 'int' ? [0, 1, -2, 0, 3] : values;
      const f = Tensor.fromArray(d, [5], vals).toFloat32();
      expect(Array.from(f)).toEqual(vals);
    }
    const big = Tensor.fromArray('F32', [1], [7]);
    const copy = big.toFloat32();
    copy[0] = 0;
    expect(big.data[0]).toBe(7);
  });
});
