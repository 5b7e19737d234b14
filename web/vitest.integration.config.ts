import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// The package's own name resolves to its sources (as tsconfig.json "paths" does).
const alias = [
  { find: /^@flowwire\/client$/, replacement: fileURLToPath(new URL("./src/index.ts", import.meta.url)) },
  { find: /^@flowwire\/client\/client$/, replacement: fileURLToPath(new URL("./src/client.ts", import.meta.url)) },
];

// `npm run test:integration`: against a real flowwire server (see test/integration).
export default defineConfig({
  resolve: { alias },
  test: {
    environment: "node",
    include: ["test/integration/**/*.test.{ts,tsx}"],
    testTimeout: 60_000,
    hookTimeout: 30_000,
    // One server, one scenario at a time.
    fileParallelism: false,
  },
});
