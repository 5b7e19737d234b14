import { defineConfig } from "vitest/config";

// `npm test`: unit and hook tests. The integration test (test/integration) needs a
// running server and has its own config: `npm run test:integration`.
export default defineConfig({
  test: {
    environment: "happy-dom",
    include: ["test/unit/**/*.test.ts", "test/hooks/**/*.test.{ts,tsx}"],
    restoreMocks: true,
  },
});
