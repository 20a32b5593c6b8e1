/**
 * Imports every module that defines a user-facing JSON format, so the shared schema registry
 * holds them all; `npm run schemas` writes their JSON Schemas to workflows/schema/.
 */
import './checkpoint/index.js';

export { schemaRegistry } from './schema/index.js';
