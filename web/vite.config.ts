import { defineConfig } from "vite";

// The server (crates/labbook-server) embeds dist/ and serves index.html at `/`
// and for every non-/api path; assets live under /assets/.
const port = process.env.LABBOOK_PORT ?? "5001";
const target = `http://127.0.0.1:${port}`;

export default defineConfig({
  base: "/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    target: "es2022",
    chunkSizeWarningLimit: 400,
  },
  server: {
    host: "127.0.0.1",
    proxy: {
      "/api": { target, changeOrigin: true },
      "/health": { target, changeOrigin: true },
    },
  },
});
