#!/usr/bin/env node
// Generates src/generated/protocol.ts from the server's JSON Schemas (docs/schema/*.json,
// one file per message type, as written by msgspec.json.schema: a top-level "$ref" into
// "$defs"). The output is deterministic: same input, same bytes.
//
//   node scripts/gen-types.mjs            write src/generated/protocol.ts
//   node scripts/gen-types.mjs --check    exit 1 when the committed file is stale
//   options: --schema-dir DIR (default ../docs/schema, or $FLOWWIRE_SCHEMA_DIR)
//            --out FILE       (default src/generated/protocol.ts)

import { readFileSync, readdirSync, writeFileSync, existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const WEB_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const DEFAULT_SCHEMA_DIR = resolve(WEB_DIR, "..", "docs", "schema");
export const DEFAULT_OUT = resolve(WEB_DIR, "src", "generated", "protocol.ts");

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** JSON with object keys sorted, to compare schemas regardless of key order. */
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function pascal(text) {
  return text
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((part) => part[0].toUpperCase() + part.slice(1))
    .join("");
}

function propertyKey(key) {
  return IDENTIFIER.test(key) ? key : JSON.stringify(key);
}

function comment(text, indent) {
  if (typeof text !== "string" || text.trim() === "") return "";
  const lines = text
    .trim()
    .replace(/\*\//g, "*\\/")
    .split(/\r?\n/)
    .map((line) => line.trim());
  if (lines.length === 1) return `${indent}/** ${lines[0]} */\n`;
  return `${indent}/**\n${lines.map((l) => `${indent} * ${l}`.trimEnd()).join("\n")}\n${indent} */\n`;
}

/** List the schema files (sorted, so output order never depends on the file system). */
export function listSchemaFiles(schemaDir) {
  if (!existsSync(schemaDir)) {
    throw new Error(
      `schema directory ${schemaDir} does not exist: the server writes docs/schema/*.json ` +
        `(pass --schema-dir or set FLOWWIRE_SCHEMA_DIR to use another)`,
    );
  }
  const files = readdirSync(schemaDir)
    .filter((name) => name.endsWith(".json"))
    .sort();
  if (files.length === 0) throw new Error(`no *.json schema files in ${schemaDir}`);
  return files;
}

/**
 * Convert the schemas in `schemaDir` to TypeScript source. Returns the file text and the
 * message types found (file names without ".json").
 */
export function generate(schemaDir = DEFAULT_SCHEMA_DIR) {
  const files = listSchemaFiles(schemaDir);
  /** name -> { canonical, schema } for every emitted definition */
  const emitted = new Map();
  /** message type -> root type name */
  const roots = new Map();

  for (const file of files) {
    const messageType = file.slice(0, -".json".length);
    const path = join(schemaDir, file);
    let doc;
    try {
      doc = JSON.parse(readFileSync(path, "utf8"));
    } catch (err) {
      throw new Error(`${path}: not valid JSON (${err.message})`);
    }
    if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
      throw new Error(`${path}: a schema must be a JSON object`);
    }
    const defs = doc.$defs ?? doc.definitions ?? {};
    // Map this file's local def names to globally unique emitted names.
    const local = new Map();
    for (const name of Object.keys(defs).sort()) {
      const key = canonical(defs[name]);
      let candidate = pascal(name) || "Def";
      let n = 1;
      while (emitted.has(candidate) && emitted.get(candidate).canonical !== key) {
        n += 1;
        candidate = `${pascal(name)}${n}`;
      }
      local.set(name, candidate);
      // A definition is emitted from the first file that has it, resolving its refs
      // through that file's name map (filled in completely before any use).
      if (!emitted.has(candidate)) emitted.set(candidate, { canonical: key, schema: defs[name], local });
    }
    let rootName;
    const rootRef = typeof doc.$ref === "string" ? refName(doc.$ref, path) : null;
    if (rootRef !== null && Object.keys(doc).every((k) => ["$ref", "$defs", "definitions", "$schema", "title", "description"].includes(k))) {
      if (!local.has(rootRef)) throw new Error(`${path}: $ref to unknown definition ${rootRef}`);
      rootName = local.get(rootRef);
    } else {
      // An inline root schema: emit it under a name derived from the message type.
      const inline = { ...doc };
      delete inline.$defs;
      delete inline.definitions;
      delete inline.$schema;
      rootName = `${pascal(messageType)}Message`;
      const key = canonical(inline);
      let n = 1;
      let candidate = rootName;
      while (emitted.has(candidate) && emitted.get(candidate).canonical !== key) {
        n += 1;
        candidate = `${rootName}${n}`;
      }
      rootName = candidate;
      if (!emitted.has(rootName)) emitted.set(rootName, { canonical: key, schema: inline, local });
    }
    for (const entry of emitted.values()) entry.path ??= path;
    roots.set(messageType, { name: rootName, description: doc.description });
  }

  const out = [];
  out.push(
    "// Generated by scripts/gen-types.mjs from docs/schema/*.json. Do not edit by hand:",
    "// run `npm run gen:types` after the server's schemas change (a test fails until then).",
    "",
  );
  for (const name of [...emitted.keys()].sort()) {
    const entry = emitted.get(name);
    const ctx = { local: entry.local, path: entry.path };
    out.push(comment(entry.schema.description, "").trimEnd());
    if (isPlainObjectWithProperties(entry.schema)) {
      out.push(`export interface ${name} ${objectBody(entry.schema, ctx, "")}`);
    } else {
      out.push(`export type ${name} = ${toTs(entry.schema, ctx, "")};`);
    }
    out.push("");
  }
  const types = [...roots.keys()].sort(); // by type: "presence" before "presence.diff", whatever the file names
  out.push("/** Every message of the protocol, by its \"type\". */");
  out.push("export interface ProtocolMessages {");
  for (const type of types) {
    const root = roots.get(type);
    out.push(comment(root.description, "  ").trimEnd());
    out.push(`  ${JSON.stringify(type)}: ${root.name};`);
  }
  out.push("}", "");
  out.push("/** The message types the server's schemas define, sorted. */");
  out.push("export const PROTOCOL_MESSAGE_TYPES = [");
  for (const type of types) out.push(`  ${JSON.stringify(type)},`);
  out.push("] as const;", "");
  const text = out.filter((line, i, all) => !(line === "" && all[i - 1] === "")).join("\n");
  return { text: text.replace(/^\n+/, ""), types };
}

function isPlainObjectWithProperties(schema) {
  return (
    schema !== null &&
    typeof schema === "object" &&
    (schema.type === "object" || schema.type === undefined) &&
    schema.properties !== undefined &&
    schema.anyOf === undefined &&
    schema.oneOf === undefined &&
    schema.allOf === undefined
  );
}

function refName(ref, path) {
  const match = /^#\/(?:\$defs|definitions)\/(.+)$/.exec(ref);
  if (match === null) throw new Error(`${path}: unsupported $ref ${ref} (only local #/$defs/ refs)`);
  return decodeURIComponent(match[1].replace(/~1/g, "/").replace(/~0/g, "~"));
}

function union(members) {
  const unique = [...new Set(members)];
  if (unique.includes("unknown")) return "unknown";
  return unique.length === 0 ? "never" : unique.join(" | ");
}

function wrapForArray(type) {
  return /^[A-Za-z0-9_$."]+$/.test(type) || type.endsWith("[]") ? type : `(${type})`;
}

function objectBody(schema, ctx, indent) {
  const inner = `${indent}  `;
  const required = new Set(Array.isArray(schema.required) ? schema.required : []);
  const lines = ["{"];
  for (const key of Object.keys(schema.properties ?? {})) {
    const prop = schema.properties[key];
    lines.push(comment(prop?.description, inner).trimEnd());
    const optional = required.has(key) ? "" : "?";
    lines.push(`${inner}${propertyKey(key)}${optional}: ${toTs(prop, ctx, inner)};`);
  }
  const extra = schema.additionalProperties;
  if (extra === true || (extra !== null && typeof extra === "object")) {
    // Declared properties must fit the index signature, so it is `unknown`.
    lines.push(`${inner}[key: string]: unknown;`);
  }
  lines.push(`${indent}}`);
  return lines.filter((l) => l !== "").join("\n");
}

function toTs(schema, ctx, indent) {
  if (schema === true || schema === undefined) return "unknown";
  if (schema === false) return "never";
  if (schema === null || typeof schema !== "object") throw new Error(`${ctx.path}: invalid schema ${JSON.stringify(schema)}`);
  if (typeof schema.$ref === "string") {
    const name = refName(schema.$ref, ctx.path);
    if (!ctx.local.has(name)) throw new Error(`${ctx.path}: $ref to unknown definition ${name}`);
    return ctx.local.get(name);
  }
  if ("const" in schema) return JSON.stringify(schema.const);
  if (Array.isArray(schema.enum)) return union(schema.enum.map((v) => JSON.stringify(v)));
  if (Array.isArray(schema.anyOf)) return union(schema.anyOf.map((s) => toTs(s, ctx, indent)));
  if (Array.isArray(schema.oneOf)) return union(schema.oneOf.map((s) => toTs(s, ctx, indent)));
  if (Array.isArray(schema.allOf)) {
    const parts = schema.allOf.map((s) => toTs(s, ctx, indent));
    return parts.length === 1 ? parts[0] : parts.map((p) => (p.includes("|") ? `(${p})` : p)).join(" & ");
  }
  if (Array.isArray(schema.type)) {
    return union(schema.type.map((t) => toTs({ ...schema, type: t }, ctx, indent)));
  }
  switch (schema.type) {
    case "string":
      return "string";
    case "integer":
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "null":
      return "null";
    case "array": {
      if (Array.isArray(schema.prefixItems)) {
        const items = schema.prefixItems.map((s) => toTs(s, ctx, indent));
        const rest = schema.items === false || schema.items === undefined ? "" : `, ...${wrapForArray(toTs(schema.items, ctx, indent))}[]`;
        return `[${items.join(", ")}${rest}]`;
      }
      return `${wrapForArray(toTs(schema.items, ctx, indent))}[]`;
    }
    case "object":
    case undefined: {
      if (schema.properties !== undefined) return objectBody(schema, ctx, indent);
      if (schema.type === undefined) return "unknown";
      const extra = schema.additionalProperties;
      const value = extra === undefined || extra === true ? "unknown" : toTs(extra, ctx, indent);
      return `Record<string, ${value}>`;
    }
    default:
      throw new Error(`${ctx.path}: unsupported schema type ${JSON.stringify(schema.type)}`);
  }
}

function parseArgs(argv) {
  const args = { check: false, schemaDir: process.env.FLOWWIRE_SCHEMA_DIR || DEFAULT_SCHEMA_DIR, out: DEFAULT_OUT };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === "--check") args.check = true;
    else if (arg === "--schema-dir") args.schemaDir = resolve(argv[++i]);
    else if (arg === "--out") args.out = resolve(argv[++i]);
    else throw new Error(`unknown argument ${arg}`);
  }
  return args;
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const { text, types } = generate(args.schemaDir);
  if (args.check) {
    const current = existsSync(args.out) ? readFileSync(args.out, "utf8") : "";
    if (current !== text) {
      console.error(`${args.out} is stale: run \`npm run gen:types\``);
      process.exit(1);
    }
    console.log(`${args.out} is up to date (${types.length} message types)`);
    return;
  }
  mkdirSync(dirname(args.out), { recursive: true });
  writeFileSync(args.out, text);
  console.log(`wrote ${args.out} (${types.length} message types from ${args.schemaDir})`);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    main();
  } catch (err) {
    console.error(`gen-types: ${err.message}`);
    process.exit(1);
  }
}
