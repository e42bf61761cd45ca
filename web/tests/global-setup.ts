// Creates a fresh store, fills it with real runs (the spirals demo under
// `labbook run`, a 200k-point run, 450 small runs and one live run that keeps
// logging), then starts the real `labbook ui` server on a free port.
import { execFile, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { BODY_HEADERS } from "./csp";
import { waitFor } from "./wait";

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const web = resolve(here, "..");
const root = resolve(web, "..");

export const STATE_FILE = join(web, "test-results", ".e2e-state.json");

function need(path: string, what: string) {
  if (!existsSync(path)) throw new Error(`${what} not found at ${path}`);
}


function kill(p: ChildProcess | undefined, signal: NodeJS.Signals = "SIGTERM") {
  if (p?.pid && p.exitCode === null) {
    try {
      process.kill(p.pid, signal);
    } catch {
      /* already gone */
    }
  }
}

export default async function globalSetup(): Promise<() => Promise<void>> {
  const bin = resolve(web, process.env.LABBOOK_BIN ?? join(root, "target/release/labbook"));
  const python = process.env.PYTHON ?? join(root, ".venv/bin/python");
  need(bin, "the labbook binary (build it with `make build`, or set LABBOOK_BIN)");
  need(python, "Python with labbook installed (set PYTHON)");

  const tmp = mkdtempSync(join(tmpdir(), "labbook-e2e-"));
  const store = join(tmp, ".labbook");
  const env = { ...process.env, LABBOOK_DIR: store, PATH: `${dirname(python)}:${process.env.PATH ?? ""}`, NO_COLOR: "1" };
  const t0 = Date.now();

  // 450 small runs (paging) in the background while the demo trains.
  const bulk = run(python, [join(here, "fixtures/bulk_runs.py"), "450"], { env, cwd: tmp });

  // The demo: 3 learning rates × 2 widths, each wrapped by `labbook run` so
  // output, git state and the environment are captured.
  const spirals = join(root, "examples/spirals");
  for (const lr of ["0.03", "0.3", "1.0"]) {
    for (const hidden of ["8", "64"]) {
      const why = `Does width ${hidden} at lr ${lr} separate the spirals?`;
      await run(bin, ["run", "--project", "spirals", "--group", `lr=${lr} hidden=${hidden}`, "--tag", "grid", "--why", why, "--", python, "train.py", "--lr", lr, "--hidden", hidden, "--seed", "0", "--why", why], { env, cwd: spirals });
    }
  }
  await run(python, [join(here, "fixtures/long_run.py")], { env, cwd: tmp });
  await bulk;

  // The live run keeps logging for the whole test session.
  const live = spawn(python, [join(here, "fixtures/live_run.py"), "--seconds", "900"], { env, cwd: tmp, stdio: "ignore" });

  // The real server, on a port the OS picks.
  const server = spawn(bin, ["ui", "--host", "127.0.0.1", "--port", "0", "--dir", store], { env, cwd: tmp, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  server.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  server.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const url = await waitFor(
    "`labbook ui` to print its URL",
    async () => {
      if (server.exitCode !== null) throw new Error(`labbook ui exited (${server.exitCode}): ${out}`);
      return /serving .* at (http:\/\/\S+)/.exec(out)?.[1];
    },
    20000,
  );
  await waitFor("GET /health", async () => ((await fetch(`${url}/health`)).ok ? true : undefined), 10000);
  await waitFor(
    "the live run's first points",
    async () => {
      const r = (await (await fetch(`${url}/api/v1/projects/spirals/runs?filter=${encodeURIComponent('name = "live-run"')}`)).json()) as { runs: { metrics: Record<string, unknown> }[] };
      return r.runs[0]?.metrics["live/value"] ? true : undefined;
    },
    20000,
  );

  // The binary embeds web/dist when it is compiled. When its copy differs
  // from the dist just built, the tests serve the fresh dist themselves (API
  // calls still go to the real server) and say so.
  const index = await fetch(`${url}/`);
  const served = await index.text();
  const built = readFileSync(join(web, "dist/index.html"), "utf8");
  const assets = served === built ? "embedded" : "dist";
  if (assets === "dist") {
    console.warn("\n[e2e] the labbook binary embeds an older web/dist; serving the fresh web/dist to the browser (rebuild the binary to test the embedded copy)\n");
  }
  // The headers the server puts on the dashboard's HTML (its CSP among
  // them): the tests keep them when they serve web/dist instead.
  const htmlHeaders: Record<string, string> = {};
  index.headers.forEach((v, k) => {
    if (!BODY_HEADERS.has(k)) htmlHeaders[k] = v;
  });
  const csp = htmlHeaders["content-security-policy"] ? "server" : "emulated";
  if (csp === "emulated") {
    console.warn("\n[e2e] the server sends no Content-Security-Policy on the dashboard; the tests add the expected one (tests/csp.ts) to its HTML\n");
  }

  process.env.LABBOOK_E2E_URL = url;
  process.env.LABBOOK_E2E_STORE = store;
  process.env.LABBOOK_E2E_ASSETS = assets;
  process.env.LABBOOK_E2E_HTML_HEADERS = JSON.stringify(htmlHeaders);
  process.env.LABBOOK_E2E_CSP = csp;
  mkdirSync(dirname(STATE_FILE), { recursive: true });
  writeFileSync(STATE_FILE, JSON.stringify({ url, store, assets, csp, setup_s: (Date.now() - t0) / 1000 }));
  console.log(`[e2e] store ${store} filled in ${((Date.now() - t0) / 1000).toFixed(1)} s; server ${url}`);

  return async () => {
    kill(live);
    kill(server);
    await new Promise((r) => setTimeout(r, 300));
    kill(live, "SIGKILL");
    kill(server, "SIGKILL");
    if (!process.env.LABBOOK_E2E_KEEP) rmSync(tmp, { recursive: true, force: true });
  };
}
