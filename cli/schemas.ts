/**
 * Imports every module that defines a user-facing JSON format, so the shared schema registry
 * holds them all; `npm run schemas` writes their JSON Schemas to workflows/schema/. It sits in the
 * top layer because the formats live in every layer (checkpoints in core, profiles in plugins,
 * workflows in adapters).
 */
import '../core/src/checkpoint/index.js';
import '../plugins/profile.js';
import '../adapters/embedded/workflow.js';

export { schemaRegistry } from '../core/src/schema/index.js';
