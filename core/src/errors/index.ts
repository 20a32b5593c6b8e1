export { ERROR_CODES, SlipstreamError, codeForStatus, fromNative, invalidArgument } from './catalog.js';
export type { ErrorCode } from './catalog.js';
