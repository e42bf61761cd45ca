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
    // The server refuses writes from other origins; the dev server's pages
    // are this machine's own, so the proxy sends them as same-origin calls.
    proxy: {
      "/api": {
        target,
        changeOrigin: true,
        configure: (proxy) => proxy.on("proxyReq", (req) => req.removeHeader("origin")),
      },
      "/health": { target, changeOrigin: true },
    },
  },
});
