/** Host-side argument checks of the linears: they run first, so messages name the user's tensors. */
import { SlipstreamError, invalidArgument } from '../errors/index.js';
import { Tensor, shapeToString } from '../tensor/index.js';

export function requireTensor(value: unknown, name: string): Tensor {
  if (!(value instanceof Tensor)) throw invalidArgument(name, 'a Tensor', value);
  return value;
}

export function requireF32(value: unknown, name: string): Tensor<'F32'> {
  const t = requireTensor(value, name);
  if (t.dtype !== 'F32') {
    throw new SlipstreamError('SLIP_E_DTYPE_MISMATCH', `expected an F32 tensor for ${name}, got ${t.dtype} ${shapeToString(t.shape)}`);
  }
  return t as Tensor<'F32'>;
}

/** x [..., K] viewed as [M, K] (no copy), and the leading dims the output keeps. */
export function activations(value: unknown, k: number): { x2: Tensor<'F32'>; lead: number[] } {
  const x = requireF32(value, 'x');
  if (x.rank < 1 || x.shape[x.rank - 1] !== k) {
    throw new SlipstreamError('SLIP_E_SHAPE_MISMATCH', `expected shape [..., ${k}] for x (K = ${k}), got ${shapeToString(x.shape)}`);
  }
  const lead = x.shape.slice(0, -1);
  const m = lead.reduce((a, b) => a * b, 1);
  return { x2: x.reshape([m, k]), lead };
}

export function optionalBias(value: unknown, n: number): Tensor<'F32'> | undefined {
  if (value === undefined || value === null) return undefined;
  const b = requireF32(value, 'bias');
  if (b.rank !== 1 || b.shape[0] !== n) {
    throw new SlipstreamError('SLIP_E_SHAPE_MISMATCH', `expected shape [${n}] for bias (N = ${n}), got ${shapeToString(b.shape)}`);
  }
  return b;
}
