/** gemmF32: the unplanned FP32 product, y = x · wᵀ (+ bias), for one-off calls and as the baseline. */
import { SlipstreamError } from '../errors/index.js';
import { native } from '../native/index.js';
import { callNative } from '../native/call.js';
import { Tensor, shapeToString } from '../tensor/index.js';
import { activations, optionalBias, requireF32 } from './checks.js';

/** x: F32 [..., K]; w: F32 [N, K]; bias: F32 [N]. Returns F32 [..., N]. Runs on the calling thread. */
export function gemmF32(x: Tensor, w: Tensor, bias?: Tensor): Tensor<'F32'> {
  const wt = requireF32(w, 'w');
  if (wt.rank !== 2) {
    throw new SlipstreamError('SLIP_E_SHAPE_MISMATCH', `expected a 2-D [N, K] tensor for w, got ${shapeToString(wt.shape)}`);
  }
  const [n, k] = wt.shape;
  const { x2, lead } = activations(x, k);
  const b = optionalBias(bias, n);
  const y = Tensor.zeros('F32', [x2.shape[0], n]);
  callNative(() => native().gemmF32(x2.toNative(), wt.toNative(), b?.toNative() ?? null, y.toNative()));
  return y.reshape([...lead, n]);
}
