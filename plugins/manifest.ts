/**
 * A plugin's manifest: its id, what it does, where it runs, and its parameters as one zod object
 * (defaults and descriptions included). Workflow JSON fields, CLI flags and ComfyUI node inputs
 * are all generated from `params`, so each parameter is declared exactly once.
 */
import { z } from 'zod';

export type Runtime = 'embedded' | 'comfyui' | 'vllm';

export interface PluginManifest<P extends z.ZodObject = z.ZodObject> {
  readonly id: string;
  readonly title: string;
  readonly description: string;
  /** The paper or project whose rule it implements. */
  readonly source: string;
  readonly runtimes: readonly Runtime[];
  readonly params: P;
}

export function definePlugin<P extends z.ZodObject>(m: PluginManifest<P>): PluginManifest<P> {
  return Object.freeze(m);
}

export type PluginParams<M extends PluginManifest> = z.output<M['params']>;
