import { defineConfig } from "vitest/config";

// `npm run test:integration`: against a real flowwire server (see test/integration).
export default defineConfig({
  test: {
    environment: "node",
    include: ["test/integration/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 30_000,
    // One server, one scenario at a time.
    fileParallelism: false,
  },
});
