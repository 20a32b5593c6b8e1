export { defineSchema, type DefineOptions, type SchemaDefinition, type SchemaInput, type SchemaType } from './define.js';
export { describeValue, formatIssue, formatIssues, formatPath, type FormattedIssue } from './format-issues.js';
export { parseArgument } from './argument.js';
export { parseJsonFile, parseJsonText, readJsonFile } from './json-file.js';
export {
  SchemaRegistry,
  jsonSchemaFileName,
  renderJsonSchemas,
  schemaRegistry,
  staleJsonSchemas,
  writeJsonSchemas,
} from './registry.js';
