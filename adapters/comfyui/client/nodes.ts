/**
 * Our nodes as a workflow file names them: class, widget names in widget order and their
 * defaults, from the same manifests the Python nodes are built from (../manifests.ts).
 */
import { comfyManifests, widgetName, type ComfyWidget } from '../manifests.js';

export interface NodeWidget {
  name: string;
  /** The plugin parameter's key in the manifest (the profile's key), or the widget's own name. */
  key: string;
  plugin: string | null;
  default: unknown;
}

export interface OurNode {
  classType: string;
  title: string;
  plugin: string;
  widgets: NodeWidget[];
  /** Inserted by `accelerate` without a profile. */
  byDefault: boolean;
}

/** The nodes `accelerate` inserts: one per plugin (SlipstreamProfile, which applies a file, is for users to add). */

export function ourNodes(): OurNode[] {
  const { plugins, nodes } = comfyManifests();
  return nodes.flatMap((n) => {
    if (n.plugin === null) return [];
    const props = plugins.find((p) => p.id === n.plugin)!.params.properties as Record<string, { default?: unknown }>;
    const keys = n.params ?? Object.keys(props);
    const own = (w: ComfyWidget): NodeWidget => ({ name: w.name, key: w.name, plugin: null, default: w.default });
    return [{
      classType: n.id,
      title: n.displayName,
      plugin: n.plugin,
      byDefault: n.byDefault ?? false,
      widgets: [
        ...n.before.map(own),
        ...keys.map((k) => ({ name: widgetName(k), key: k, plugin: n.plugin, default: props[k].default })),
        ...n.after.map(own),
      ],
    }];
  });
}
