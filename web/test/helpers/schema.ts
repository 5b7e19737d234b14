/**
 * A small JSON Schema validator for the subset msgspec.json.schema emits ($ref/$defs,
 * type, enum, const, anyOf/oneOf/allOf, properties, required, additionalProperties,
 * items, pattern, min/maxLength, maxItems, minimum/maximum). Tests use it to check that
 * the frames the client sends, and the frames its tests feed it, match the server's
 * schemas in docs/schema/.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const SCHEMA_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "docs", "schema");

type Schema = boolean | { [key: string]: unknown };

export function schemaDirOrFail(): string {
  if (!existsSync(SCHEMA_DIR) || readdirSync(SCHEMA_DIR).filter((f) => f.endsWith(".json")).length === 0) {
    throw new Error(
      `The server's message schemas are missing: expected ${SCHEMA_DIR}/*.json ` +
        "(written by the Python side; the client's types are generated from them).",
    );
  }
  return SCHEMA_DIR;
}

export function loadSchema(type: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(schemaDirOrFail(), `${type}.json`), "utf8")) as Record<string, unknown>;
}

function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

/** Validation errors of `value` against `root` (empty when valid). */
export function validate(root: Record<string, unknown>, value: unknown): string[] {
  const defs = (root["$defs"] ?? root["definitions"] ?? {}) as Record<string, Schema>;
  let errors: string[] = [];

  /** Would `v` pass `schema`? (errors of the attempt are discarded) */
  function passes(schema: Schema, v: unknown, path: string): boolean {
    const saved = errors;
    errors = [];
    check(schema, v, path);
    const ok = errors.length === 0;
    errors = saved;
    return ok;
  }

  function check(schema: Schema, v: unknown, path: string): boolean {
    const before = errors.length;
    if (schema === true) return true;
    if (schema === false) {
      errors.push(`${path}: not allowed`);
      return false;
    }
    const s = schema;
    if (typeof s["$ref"] === "string") {
      const name = (s["$ref"] as string).replace(/^#\/(\$defs|definitions)\//, "");
      const target = defs[name];
      if (target === undefined) throw new Error(`unknown $ref ${String(s["$ref"])}`);
      check(target, v, path);
    }
    if ("const" in s && JSON.stringify(s["const"]) !== JSON.stringify(v)) errors.push(`${path}: must be ${JSON.stringify(s["const"])}`);
    if (Array.isArray(s["enum"]) && !s["enum"].some((e) => JSON.stringify(e) === JSON.stringify(v))) {
      errors.push(`${path}: ${JSON.stringify(v)} not in ${JSON.stringify(s["enum"])}`);
    }
    for (const key of ["anyOf", "oneOf"] as const) {
      const options = s[key];
      if (Array.isArray(options)) {
        const matches = options.filter((option) => passes(option as Schema, v, path));
        if (matches.length === 0 || (key === "oneOf" && matches.length > 1)) errors.push(`${path}: matches no ${key} option`);
      }
    }
    if (Array.isArray(s["allOf"])) for (const part of s["allOf"]) check(part as Schema, v, path);
    const type = s["type"];
    if (type !== undefined) {
      const types = Array.isArray(type) ? (type as string[]) : [type as string];
      const actual = jsonType(v);
      if (!types.includes(actual) && !(actual === "integer" && types.includes("number"))) {
        errors.push(`${path}: expected ${types.join("|")}, got ${actual}`);
        return false;
      }
    }
    if (typeof v === "string") {
      if (typeof s["pattern"] === "string" && !new RegExp(s["pattern"], "u").test(v)) errors.push(`${path}: does not match ${s["pattern"]}`);
      if (typeof s["minLength"] === "number" && v.length < s["minLength"]) errors.push(`${path}: too short`);
      if (typeof s["maxLength"] === "number" && v.length > s["maxLength"]) errors.push(`${path}: too long`);
    }
    if (typeof v === "number") {
      if (typeof s["minimum"] === "number" && v < s["minimum"]) errors.push(`${path}: below minimum`);
      if (typeof s["maximum"] === "number" && v > s["maximum"]) errors.push(`${path}: above maximum`);
    }
    if (Array.isArray(v)) {
      if (typeof s["maxItems"] === "number" && v.length > s["maxItems"]) errors.push(`${path}: too many items`);
      if (s["items"] !== undefined) v.forEach((item, i) => check(s["items"] as Schema, item, `${path}[${i}]`));
    }
    if (jsonType(v) === "object") {
      const obj = v as Record<string, unknown>;
      const props = (s["properties"] ?? {}) as Record<string, Schema>;
      for (const key of (s["required"] ?? []) as string[]) {
        if (!(key in obj)) errors.push(`${path}: missing required ${key}`);
      }
      for (const [key, child] of Object.entries(obj)) {
        if (key in props) check(props[key] as Schema, child, `${path}.${key}`);
        else if (s["additionalProperties"] === false) errors.push(`${path}: unexpected property ${key}`);
        else if (typeof s["additionalProperties"] === "object") check(s["additionalProperties"] as Schema, child, `${path}.${key}`);
      }
    }
    return errors.length === before;
  }

  const start: Schema = typeof root["$ref"] === "string" ? { $ref: root["$ref"] } : root;
  check(start, value, "$");
  return errors;
}

/** Validate a frame against docs/schema/<its type>.json. */
export function validateFrame(frame: unknown): string[] {
  const type = (frame as { type?: unknown }).type;
  if (typeof type !== "string") return ["$: no type"];
  return validate(loadSchema(type), frame);
}
