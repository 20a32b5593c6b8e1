export { Progress, createProgress, formatBytes, formatDuration, type ProgressOptions, type ProgressStream } from './progress.js';
