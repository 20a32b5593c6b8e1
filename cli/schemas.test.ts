import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { expect, it } from 'vitest';

import { staleJsonSchemas } from '../core/src/schema/index.js';
import { schemaRegistry } from './schemas.js';

it('keeps workflows/schema/ in step with the schema definitions (run `npm run schemas`)', async () => {
  const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../workflows/schema');
  expect(schemaRegistry.list().length).toBeGreaterThan(0);
  expect(await staleJsonSchemas(dir, schemaRegistry)).toEqual([]);
});
