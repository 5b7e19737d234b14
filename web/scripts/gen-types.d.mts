// Types of scripts/gen-types.mjs, for the test that imports it.
export declare const DEFAULT_SCHEMA_DIR: string;
export declare const DEFAULT_OUT: string;
export declare function listSchemaFiles(schemaDir: string): string[];
export declare function generate(schemaDir?: string): { text: string; types: string[] };
