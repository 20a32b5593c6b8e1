export { MAX_HEADER_BYTES, METADATA_KEY, type TensorInfo } from './header.js';
export { SafetensorsReader, readSafetensors, type SafetensorsContents } from './reader.js';
export { SafetensorsWriter, writeSafetensors, type TensorSpec, type WriterOptions } from './writer.js';
