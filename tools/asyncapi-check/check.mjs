// Validates an AsyncAPI document with the AsyncAPI project's own parser.
//   usage: node check.mjs path/to/asyncapi.json
// Prints every diagnostic (severity, path, message); exits 1 when any has severity
// error (or the document cannot be read), 0 otherwise.
import { readFile } from "node:fs/promises";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const path = process.argv[2];
if (!path) {
  console.error("usage: node check.mjs ASYNCAPI_DOCUMENT");
  process.exit(2);
}
const text = await readFile(path, "utf8");
const parser = new Parser();
const { document, diagnostics } = await parser.parse(text, { source: path });
const names = { [DiagnosticSeverity.Error]: "error", [DiagnosticSeverity.Warning]: "warning",
  [DiagnosticSeverity.Information]: "info", [DiagnosticSeverity.Hint]: "hint" };
let errors = 0;
for (const d of diagnostics) {
  if (d.severity === DiagnosticSeverity.Error) errors += 1;
  console.log(`${names[d.severity] ?? d.severity} ${d.code} at ${d.path.join(".") || "/"}: ${d.message}`);
}
if (errors || !document) {
  console.log(`${path}: ${errors} error(s)`);
  process.exit(1);
}
console.log(`${path}: valid AsyncAPI ${document.version()} (${diagnostics.length} diagnostic(s), none an error)`);
