export { cosineSimilarity, maxAbsError, meanAbs, meanAbsError, mse, perplexity, psnr, relativeL1, rmse, type Values } from './compare.js';
export { ssim, type SsimOptions } from './ssim.js';
export { percentile, summarize, timeIt, type TimeItOptions, type TimingStats } from './timer.js';
export { fitLine, fitPolynomial, type LineFit } from './fit.js';
export { cpuModel } from './machine.js';
