import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// The package's own name resolves to its sources (as tsconfig.json "paths" does).
const alias = [
  { find: /^@flowwire\/client$/, replacement: fileURLToPath(new URL("./src/index.ts", import.meta.url)) },
  { find: /^@flowwire\/client\/client$/, replacement: fileURLToPath(new URL("./src/client.ts", import.meta.url)) },
];

// `npm test`: unit and hook tests. The integration test (test/integration) needs a
// running server and has its own config: `npm run test:integration`.
export default defineConfig({
  resolve: { alias },
  test: {
    environment: "happy-dom",
    include: ["test/unit/**/*.test.ts", "test/hooks/**/*.test.{ts,tsx}"],
    restoreMocks: true,
  },
});
