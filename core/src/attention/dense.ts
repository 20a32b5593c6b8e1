/**
 * FP32 dense attention: softmax(scale·QKᵀ + mask)·V, tiled with an online softmax and FP32
 * accumulation (slip_attn_dense). HND/NHD, GQA/MQA, causal, masks, varlen, LSE.
 */
import { callNative, callNativeAsync } from '../native/call.js';
import { native } from '../native/index.js';
import type { Tensor } from '../tensor/index.js';
import { prepareAttn, type AttnOptions, type AttnResult } from './common.js';

/** Runs on the libuv pool; attnDenseSync for small problems. */
export async function attnDense(q: Tensor, k: Tensor, v: Tensor, options: AttnOptions = {}): Promise<AttnResult> {
  const c = prepareAttn(q, k, v, options);
  const t = c.tensors;
  await callNativeAsync(() => native().attnDense(t.q, t.k, t.v, t.out, c.options));
  return c.result;
}

export function attnDenseSync(q: Tensor, k: Tensor, v: Tensor, options: AttnOptions = {}): AttnResult {
  const c = prepareAttn(q, k, v, options);
  const t = c.tensors;
  callNative(() => native().attnDenseSync(t.q, t.k, t.v, t.out, c.options));
  return c.result;
}
