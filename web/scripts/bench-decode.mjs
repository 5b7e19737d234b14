// The TypeScript client's decode cost per message, JSON against msgpack (protocol
// version 2), on the frames benchmarks/bench_formats.py wrote: JSON.parse of each text
// frame (a browser hands the client a string) against @msgpack/msgpack's decode of each
// binary frame (a browser hands it an ArrayBuffer). Rounds alternate the two; medians.
//
//   node scripts/bench-decode.mjs FRAMES.json   (written by python -m benchmarks.bench_formats)
//
// Prints one JSON object: ns per message for each, and msgpack / JSON.
import { readFileSync } from "node:fs";
import { Decoder } from "@msgpack/msgpack";

const frames = JSON.parse(readFileSync(process.argv[2], "utf8"));
const texts = frames.json;
const binaries = frames.msgpack.map((b64) => new Uint8Array(Buffer.from(b64, "base64")));
const decoder = new Decoder();
const ROUNDS = Number(process.env.ROUNDS ?? 15);
const REPEAT = 20;

function time(fn) {
  const t0 = process.hrtime.bigint();
  let sink = 0;
  for (let r = 0; r < REPEAT; r++) sink += fn();
  const ns = Number(process.hrtime.bigint() - t0);
  if (sink < 0) throw new Error("unreachable");
  return ns / (REPEAT * texts.length);
}

const parseAll = () => {
  let n = 0;
  for (const t of texts) n += JSON.parse(t).type.length;
  return n;
};
const decodeAll = () => {
  let n = 0;
  for (const b of binaries) n += decoder.decode(b).type.length;
  return n;
};

for (let i = 0; i < 3; i++) {
  parseAll();
  decodeAll();
}
const json = [];
const msgpack = [];
for (let i = 0; i < ROUNDS; i++) {
  json.push(time(parseAll));
  msgpack.push(time(decodeAll));
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const j = median(json);
const m = median(msgpack);
console.log(
  JSON.stringify({
    node: process.version,
    messages: texts.length,
    ns_per_message_json_parse: Math.round(j),
    ns_per_message_msgpack_decode: Math.round(m),
    msgpack_over_json: Math.round((m / j) * 1000) / 1000,
  }),
);
