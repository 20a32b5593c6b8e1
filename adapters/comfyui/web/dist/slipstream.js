// Slipstream ComfyUI extension: built from adapters/comfyui/web/src by `npm run build:web`; do not edit.

// adapters/comfyui/web/src/stats.ts
var NODES = ["SlipstreamDeltaCache", "SlipstreamAttention", "SlipstreamMixedPrecision"];
function isRunStats(x) {
  const s = x;
  return typeof s === "object" && s !== null && NODES.includes(s.node) && Array.isArray(s.per_step);
}
var StatsHistory = class {
  #last = /* @__PURE__ */ new Map();
  add(stats) {
    this.#last.set(stats.node, stats);
  }
  last(node) {
    return this.#last.get(node);
  }
  /** One line a node shows under its title. */
  badge(node) {
    const c = this.last("SlipstreamDeltaCache");
    const a = this.last("SlipstreamAttention");
    if (node === "SlipstreamDeltaCache" && c) {
      const total = c.blocks_computed + c.blocks_skipped;
      return `skipped ${c.blocks_skipped}/${total} blocks, ~${c.seconds_saved_estimate.toFixed(1)} s saved`;
    }
    if (node === "SlipstreamAttention" && a) return `${a.attention_calls} calls, sparsity ${(100 * a.sparsity).toFixed(0)}%`;
    const m = this.last("SlipstreamMixedPrecision");
    if (node === "SlipstreamMixedPrecision" && m) {
      const { nvfp4, int8, full } = m.blocks_by_precision;
      return m.samples > 0 ? `calibrated on ${m.samples} (\u0393, error) pairs` : `blocks NVFP4 ${nvfp4}, INT8 ${int8}${full ? `, full ${full}` : ""}`;
    }
    return null;
  }
  series() {
    const c = this.last("SlipstreamDeltaCache");
    const a = this.last("SlipstreamAttention");
    const m = this.last("SlipstreamMixedPrecision");
    const all = [...c?.per_step ?? [], ...a?.per_step ?? [], ...m?.per_step ?? []].map((p) => p[0]);
    const steps = [...new Set(all)].sort((x, y) => x - y);
    const skipped = new Map((c?.per_step ?? []).map(([s, computed, sk]) => [s, sk / Math.max(1, computed + sk)]));
    const sparsity = new Map((a?.per_step ?? []).map(([s, sp]) => [s, sp]));
    const nvfp4 = new Map((m?.per_step ?? []).map(([s, n]) => [s, n.nvfp4 / Math.max(1, n.nvfp4 + n.int8 + n.full)]));
    return {
      steps,
      skipped: steps.map((s) => skipped.get(s) ?? NaN),
      sparsity: steps.map((s) => sparsity.get(s) ?? NaN),
      nvfp4: steps.map((s) => nvfp4.get(s) ?? NaN)
    };
  }
};
function chartSvg(s, width = 280, height = 160) {
  const pad = 24;
  const x = (i) => pad + (width - 2 * pad) * i / Math.max(1, s.steps.length - 1);
  const y = (v) => height - pad - (height - 2 * pad) * v;
  const line = (values, colour) => {
    const pts = values.map((v, i) => Number.isNaN(v) ? null : `${x(i).toFixed(1)},${y(v).toFixed(1)}`).filter(Boolean);
    return pts.length ? `<polyline fill="none" stroke="${colour}" stroke-width="2" points="${pts.join(" ")}"/>` : "";
  };
  const last = s.steps.length ? s.steps[s.steps.length - 1] : 0;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect x="${pad}" y="${pad}" width="${width - 2 * pad}" height="${height - 2 * pad}" fill="none" stroke="#666"/>`,
    line(s.skipped, "#4fc3f7"),
    line(s.sparsity, "#ffb74d"),
    line(s.nvfp4, "#ba68c8"),
    `<text x="${pad}" y="${height - 6}" fill="#aaa" font-size="10">step 0</text>`,
    `<text x="${width - pad}" y="${height - 6}" fill="#aaa" font-size="10" text-anchor="end">step ${last}</text>`,
    `<text x="${pad}" y="14" fill="#4fc3f7" font-size="10">skipped blocks</text>`,
    `<text x="${width - pad}" y="14" fill="#ffb74d" font-size="10" text-anchor="end">attention sparsity</text>`,
    ...s.nvfp4.some((v) => !Number.isNaN(v)) ? [`<text x="${width / 2}" y="14" fill="#ba68c8" font-size="10" text-anchor="middle">NVFP4 blocks</text>`] : [],
    "</svg>"
  ].join("");
}

// adapters/comfyui/web/src/extension.ts
var SHOW_ON_NODES = "Slipstream.ShowNodeStats";
var history = new StatsHistory();
var panel = null;
function renderPanel() {
  if (!panel) return;
  const s = history.series();
  const lines = ["SlipstreamDeltaCache", "SlipstreamAttention", "SlipstreamMixedPrecision"].map((n) => history.badge(n)).filter(Boolean);
  panel.innerHTML = s.steps.length ? `<div style="padding:8px">${chartSvg(s)}<div style="font-size:12px;opacity:.8">${lines.join("<br>")}</div></div>` : '<div style="padding:8px;opacity:.7">Run a workflow with Slipstream nodes to see skipped blocks, sparsity and precision per step.</div>';
}
var extension = {
  name: "slipstream",
  settings: [
    {
      id: SHOW_ON_NODES,
      // a custom id: the types list only the frontend's own settings
      name: "Show the last run's statistics on Slipstream nodes",
      type: "boolean",
      defaultValue: true,
      category: ["Slipstream", "Nodes", "Statistics"]
    }
  ],
  setup(app) {
    app.api.addCustomEventListener("slipstream.stats", (event) => {
      if (!isRunStats(event.detail)) return;
      history.add(event.detail);
      renderPanel();
      app.graph?.setDirtyCanvas(true, false);
    });
    app.extensionManager.registerSidebarTab({
      id: "slipstream",
      title: "Slipstream",
      icon: "pi pi-bolt",
      tooltip: "Slipstream: skipped blocks, attention sparsity and precision per step",
      type: "custom",
      render(el) {
        panel = el;
        renderPanel();
      }
    });
  },
  nodeCreated(node) {
    const type = node.comfyClass ?? node.type;
    if (typeof type !== "string" || !type.startsWith("Slipstream")) return;
    const app = window.comfyAPI.app.app;
    const draw = node.onDrawForeground;
    node.onDrawForeground = function(ctx, ...rest) {
      draw?.call(this, ctx, ...rest);
      const text = app.extensionManager.setting.get(SHOW_ON_NODES) === false ? null : history.badge(type);
      if (!text) return;
      ctx.save();
      ctx.fillStyle = "#9ccc65";
      ctx.font = "11px sans-serif";
      ctx.fillText(text, 8, this.size[1] + 14);
      ctx.restore();
    };
  }
};
window.comfyAPI.app.app.registerExtension(extension);
