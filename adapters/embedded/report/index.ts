/** The run report: animated GIFs of the videos side by side, and the self-contained HTML page. */
export { GAP_RGB, encodeGif, sideBySide, type GifOptions } from './gif.js';
export { concatFrames } from './frames.js';
export { renderReport, type ReportAssets } from './html.js';
export { ACTION_COLOURS } from './charts.js';
export { BLOCK_ACTIONS, type BlockAction, type PipelineSummary, type RunReport, type VideoResult } from './types.js';
