/** What one `npm start` run measured: the input of the HTML report and the shape of metrics.json. */

export type BlockAction = 'fp32' | 'int8' | 'nvfp4' | 'mixed' | 'skip';

export const BLOCK_ACTIONS: readonly BlockAction[] = ['fp32', 'int8', 'nvfp4', 'mixed', 'skip'];

export interface PipelineSummary {
  name: string;              // e.g. 'baseline', 'accelerated'
  description: string;       // what it turns on
  weightBytes: number;       // resident weight bytes of the model it ran
  peakRssBytes: number;
}

export interface VideoResult {
  prompt: string;
  seed: number;
  gif: string;               // file name of the side-by-side GIF inside the run folder
  baselineSeconds: number;
  acceleratedSeconds: number;
  speedup: number;           // baselineSeconds / acceleratedSeconds
  psnr: number;              // dB, accelerated vs baseline frames (8-bit RGB)
  ssim: number;
  /** [step][block]: what each block did at each step of the accelerated run. */
  blockMap: BlockAction[][];
  /** Fraction of attention blocks skipped by sparse attention per step, if used. */
  attentionSparsity?: number[];
}

export interface RunReport {
  title: string;
  createdAt: string;         // ISO date
  workflow: string;          // path of the workflow file
  machine: { cpu: string; threads: number; isa: string; node: string };
  model: { name: string; parameters: number };
  sampler: { name: string; steps: number; cfg: number; shift: number; frames: number; height: number; width: number };
  /** The report reads the pipeline named 'baseline' (else the first) as the reference and the one named 'accelerated' (else the second) as the accelerated run. */
  pipelines: PipelineSummary[];
  videos: VideoResult[];
  /** weightReduction: baseline weight bytes / accelerated weight bytes (shown as "×"). */
  totals: { baselineSeconds: number; acceleratedSeconds: number; speedup: number; meanPsnr: number; minPsnr: number; meanSsim: number; weightReduction: number };
  settings: Record<string, unknown>;   // the accelerated pipeline's options as run, shown as a table/JSON
}
