export { decodeElements, encodeElements, packIntCT, packNibbles, unpackIntCT, unpackNibbles, type EncodeOptions } from './elements.js';
export { ELEMENT_FORMATS, QUANT_FORMATS, quantOptionsSchema, type ElementFormat, type QuantFormat, type QuantOptions } from './options.js';
export { dequantize, dequantizeSync, hadamard, quantize, quantizeSync, type Quantized } from './quantize.js';
