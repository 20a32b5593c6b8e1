/**
 * Slipstream's ComfyUI frontend extension, bundled into web/dist/slipstream.js (one ESM file the
 * node pack serves): a settings section, live run statistics on our nodes, and a sidebar tab that
 * charts skipped blocks, attention sparsity and the NVFP4 share of blocks per step. Types from
 * @comfyorg/comfyui-frontend-types 1.45.6; the app object comes from window.comfyAPI at run time.
 */
import type { ComfyApp, ComfyExtension } from '@comfyorg/comfyui-frontend-types';

import { chartSvg, isRunStats, StatsHistory } from './stats.js';

declare global {
  interface Window {
    comfyAPI: { app: { app: ComfyApp } };
  }
}

const SHOW_ON_NODES = 'Slipstream.ShowNodeStats';
const history = new StatsHistory();
let panel: HTMLElement | null = null;

function renderPanel(): void {
  if (!panel) return;
  const s = history.series();
  const lines = ['SlipstreamDeltaCache', 'SlipstreamAttention', 'SlipstreamMixedPrecision'].map((n) => history.badge(n)).filter(Boolean);
  panel.innerHTML = s.steps.length
    ? `<div style="padding:8px">${chartSvg(s)}<div style="font-size:12px;opacity:.8">${lines.join('<br>')}</div></div>`
    : '<div style="padding:8px;opacity:.7">Run a workflow with Slipstream nodes to see skipped blocks, sparsity and precision per step.</div>';
}

const extension: ComfyExtension = {
  name: 'slipstream',
  settings: [
    {
      id: SHOW_ON_NODES as never, // a custom id: the types list only the frontend's own settings
      name: 'Show the last run\'s statistics on Slipstream nodes',
      type: 'boolean',
      defaultValue: true,
      category: ['Slipstream', 'Nodes', 'Statistics'],
    },
  ],
  setup(app: ComfyApp) {
    app.api.addCustomEventListener('slipstream.stats', (event) => {
      if (!isRunStats(event.detail)) return;
      history.add(event.detail);
      renderPanel();
      app.graph?.setDirtyCanvas(true, false);
    });
    app.extensionManager.registerSidebarTab({
      id: 'slipstream',
      title: 'Slipstream',
      icon: 'pi pi-bolt',
      tooltip: 'Slipstream: skipped blocks, attention sparsity and precision per step',
      type: 'custom',
      render(el: HTMLElement) {
        panel = el;
        renderPanel();
      },
    });
  },
  nodeCreated(node) {
    const type = node.comfyClass ?? node.type;
    if (typeof type !== 'string' || !type.startsWith('Slipstream')) return;
    const app = window.comfyAPI.app.app;
    const draw = node.onDrawForeground;
    node.onDrawForeground = function (ctx, ...rest) {
      draw?.call(this, ctx, ...rest);
      const text = app.extensionManager.setting.get(SHOW_ON_NODES as never) === false ? null : history.badge(type);
      if (!text) return;
      ctx.save();
      ctx.fillStyle = '#9ccc65';
      ctx.font = '11px sans-serif';
      ctx.fillText(text, 8, this.size[1] + 14);
      ctx.restore();
    };
  },
};

window.comfyAPI.app.app.registerExtension(extension);
