/**
 * The plugin manifests the ComfyUI node pack builds its node inputs from, as JSON
 * (adapters/comfyui/slipstream_comfy/manifests.json, written by `npm run schemas`): a parameter is
 * declared once, in plugins/<id>/manifest.ts, and reaches ComfyUI's widgets through this file.
 */
import { z } from 'zod';

import { deltaCacheManifest } from '../../plugins/delta-cache/manifest.js';
import type { PluginManifest } from '../../plugins/manifest.js';
import { mixedPrecisionManifest } from '../../plugins/mixed-precision/manifest.js';
import { sparseAttentionManifest } from '../../plugins/sparse-attention/manifest.js';

const manifests: PluginManifest[] = [sparseAttentionManifest, deltaCacheManifest, mixedPrecisionManifest];

export interface ComfyManifest {
  id: string;
  title: string;
  description: string;
  source: string;
  params: Record<string, unknown>;
}

export function comfyManifests(): ComfyManifest[] {
  return manifests
    .filter((m) => m.runtimes.includes('comfyui'))
    .map((m) => ({
      id: m.id,
      title: m.title,
      description: m.description,
      source: m.source,
      params: z.toJSONSchema(m.params, { target: 'draft-2020-12', io: 'input' }) as Record<string, unknown>,
    }));
}

export function renderComfyManifests(): string {
  return `${JSON.stringify(comfyManifests(), null, 2)}\n`;
}
