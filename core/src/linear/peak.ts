/** The machine's measured vector peak (slip_bench_peak), the ceiling linear timings are read against. */
import { native } from '../native/index.js';
import { callNativeAsync } from '../native/call.js';
import { z } from 'zod';
import { parseArgument } from '../schema/index.js';

const PEAK_KINDS = { 'fp32-fma': 0, 'int8-vnni': 1 } as const;
export type PeakKind = keyof typeof PEAK_KINDS;

const argsSchema = z.object({ kind: z.enum(['fp32-fma', 'int8-vnni']), seconds: z.number().positive().max(60) });

/**
 * Ops per second of a register-only loop on every pool thread: 'fp32-fma' counts 2 flop per FMA
 * lane, 'int8-vnni' 2 ops per multiply-accumulate (vpdpbusd: 4 per 32-bit lane). Rejects with
 * SLIP_E_UNSUPPORTED where the CPU (or the forced ISA level) lacks AVX-512 / AVX-512 VNNI.
 */
export async function measurePeak(kind: PeakKind, seconds: number): Promise<number> {
  const a = parseArgument(argsSchema, { kind, seconds }, '');
  return callNativeAsync(() => native().benchPeak(PEAK_KINDS[a.kind], a.seconds));
}
