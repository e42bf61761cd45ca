// A hostile web page against a running `labbook serve` and `labbook ui`.
//
// Neither server asks for a password: on one person's machine the browser
// is what must be defended against. This spec starts both servers on fresh
// stores of its own, seeds them with real data through their APIs, and lets
// pages from other loopback origins try every trick a web page has against
// every writing endpoint of labbook's API and of MLflow's (HTML forms in
// every encoding, the text/plain JSON-smuggling form, MLflow's query-string
// parameters, no-cors fetches, beacons, preflighted fetches, the artifact
// proxy), read the API and the dashboard (CORS fetches, EventSource, <img>,
// <script>, <link>, <iframe>), and finally a DNS rebinding: a page served as
// http://rebind.test:PORT, same-origin with the server as after a rebind.
//
// Afterwards every row of every table and every file of each store is
// unchanged, nothing the pages could read holds the seeded data, every
// answer to a write was the guard's 403, no document of the servers loaded
// in a frame, and both servers still answer /health. A control first proves the harness notices a write:
// the same request made the legitimate way (same-origin, from a page the
// server served) does change the store.
//
// The pages run in the browser of every other spec (Debian's Chromium); the
// rebinding page in a second one that maps rebind.test to 127.0.0.1.
import { chromium, expect, test } from "@playwright/test";
import type { Browser, BrowserContext, LaunchOptions, Page, Request } from "@playwright/test";
import { execFile, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { waitFor } from "./wait";

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const web = resolve(here, "..");
const root = resolve(web, "..");
const BIN = resolve(web, process.env.LABBOOK_BIN ?? join(root, "target/release/labbook"));
const PYTHON = process.env.PYTHON ?? join(root, ".venv/bin/python");
// The whole-store snapshot every suite shares (tests/store_snapshot.py).
const SNAPSHOT = join(root, "tests", "store_snapshot.py");

type Json = Record<string, unknown>;
type Method = "POST" | "PATCH" | "DELETE";

/** What each server holds, as the attacker is assumed to know it (ids are
 * not secrets; the data behind them is). */
type Seed = {
  run: string;
  experiment: string;
  mlRun: string;
  model: string;
  artifactBase: string;
  artifact: string;
  /** Strings that must never reach a hostile page. */
  secrets: string[];
};

type Labbook = {
  kind: "serve" | "ui";
  url: string;
  port: number;
  store: string;
  proc: ChildProcess;
  output: () => string;
  seed: Seed;
};

// ---------------------------------------------------------------------------
// Processes


const children = new Set<ChildProcess>();
// A worker that dies without running afterAll still takes its servers along.
process.on("exit", () => {
  for (const p of children) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
});

async function stop(p: ChildProcess) {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((r) => p.once("exit", () => r()));
  p.kill("SIGTERM");
  const bound = new Promise<"late">((r) => setTimeout(() => r("late"), 5000));
  if ((await Promise.race([exited, bound])) === "late") {
    p.kill("SIGKILL");
    await exited;
  }
  children.delete(p);
}

function env(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" };
  delete e.LABBOOK_DIR;
  return e;
}

async function startLabbook(kind: "serve" | "ui", dir: string): Promise<Omit<Labbook, "seed">> {
  const store = join(dir, ".labbook");
  mkdirSync(dir, { recursive: true });
  // `labbook ui` serves an existing store only; `serve` creates its own.
  if (kind === "ui") await run(BIN, ["--dir", store, "init"], { env: env(), cwd: dir });
  const proc = spawn(BIN, ["--dir", store, kind, "--host", "127.0.0.1", "--port", "0"], { env: env(), cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  children.add(proc);
  let out = "";
  proc.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const url = await waitFor(
    `labbook ${kind} to print its URL`,
    async () => {
      if (proc.exitCode !== null) throw new Error(`labbook ${kind} exited (${proc.exitCode}): ${out}`);
      return new RegExp(`labbook ${kind}: serving .* at (http://127\\.0\\.0\\.1:\\d+)`).exec(out)?.[1];
    },
    20_000,
  );
  await waitFor(`${url}/health`, async () => ((await fetch(`${url}/health`)).ok ? true : undefined), 10_000);
  return { kind, url, port: Number(new URL(url).port), store, proc, output: () => out };
}

// ---------------------------------------------------------------------------
// Seeding, the legitimate way: JSON from a client that is not a browser.

async function api(base: string, method: string, path: string, body?: Json): Promise<Json> {
  const res = await fetch(base + path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return (text ? JSON.parse(text) : {}) as Json;
}

async function seed(base: string): Promise<Seed> {
  const run = "seedrun1";
  await api(base, "POST", "/api/v1/runs", { id: run, project: "victim", created_ms: 1700000000000, config: { lr: 0.01 }, tags: ["keep"], notes: "victim" });
  await api(base, "POST", `/api/v1/runs/${run}/log`, {
    batch_id: "b1",
    series: { loss: { steps: [0, 1, 2], ts_ms: [1, 2, 3], values: [1, 0.5, 0.25] } },
    patch: { status: "finished", ended_ms: 1700000001000 },
  });
  await api(base, "POST", `/api/v1/runs/${run}/notes`, { text: "victim's private note" });

  const ml = "/api/2.0/mlflow";
  const owner = [{ key: "owner", value: "victim" }];
  const experiment = String((await api(base, "POST", `${ml}/experiments/create`, { name: "victim-experiment", tags: owner })).experiment_id);
  const created = (await api(base, "POST", `${ml}/runs/create`, { experiment_id: experiment, run_name: "victim-mlflow-run", start_time: 1700000002000, tags: owner })) as {
    run: { info: { run_id: string; artifact_uri: string } };
  };
  const mlRun = created.run.info.run_id;
  await api(base, "POST", `${ml}/runs/log-parameter`, { run_id: mlRun, key: "alpha", value: "0.5" });
  await api(base, "POST", `${ml}/runs/log-metric`, { run_id: mlRun, key: "acc", value: 0.9, timestamp: 1700000003000, step: 0 });
  // mlflow-artifacts:/1/<run>/artifacts → the proxy's path.
  const artifactBase = created.run.info.artifact_uri.replace(/^mlflow-artifacts:(\/\/[^/]*)?\/?/, "");
  const artifact = `victim-artifact-${randomBytes(8).toString("hex")}`;
  const put = await fetch(`${base}/api/2.0/mlflow-artifacts/artifacts/${artifactBase}/secret.txt`, { method: "PUT", body: artifact });
  if (!put.ok) throw new Error(`artifact upload: ${put.status} ${await put.text()}`);

  await api(base, "POST", `${ml}/registered-models/create`, { name: "victim-model", tags: owner });
  await api(base, "POST", `${ml}/model-versions/create`, { name: "victim-model", source: created.run.info.artifact_uri, run_id: mlRun, tags: owner });
  await api(base, "POST", `${ml}/registered-models/alias`, { name: "victim-model", alias: "champion", version: "1" });
  const logged = (await api(base, "POST", `${ml}/logged-models`, { experiment_id: experiment, name: "victim-logged-model", source_run_id: mlRun, tags: owner })) as {
    model: { info: { model_id: string } };
  };
  const model = logged.model.info.model_id;
  return {
    run,
    experiment,
    mlRun,
    model,
    artifactBase,
    artifact,
    secrets: [run, "victim", mlRun, model, artifact, "private note"],
  };
}

// ---------------------------------------------------------------------------
// The store, row by row and file by file.

type Snapshot = { tables: Record<string, unknown[]>; files: Record<string, unknown> };

async function snapshot(store: string): Promise<Snapshot> {
  const { stdout } = await run(PYTHON, [SNAPSHOT, store], { maxBuffer: 256 * 1024 * 1024 });
  return JSON.parse(stdout) as Snapshot;
}

/** What differs between two snapshots, one line per table or file. */
function changes(before: Snapshot, after: Snapshot): string[] {
  const out: string[] = [];
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  for (const t of new Set([...Object.keys(before.tables), ...Object.keys(after.tables)])) {
    const a = before.tables[t];
    const b = after.tables[t];
    if (same(a, b)) continue;
    if (!Array.isArray(a) || !Array.isArray(b)) {
      out.push(`table ${t}: ${JSON.stringify(a)?.slice(0, 200)} → ${JSON.stringify(b)?.slice(0, 200)}`);
      continue;
    }
    const as = new Set(a.map((r) => JSON.stringify(r)));
    const bs = new Set(b.map((r) => JSON.stringify(r)));
    const gone = [...as].filter((r) => !bs.has(r));
    const added = [...bs].filter((r) => !as.has(r));
    const rows = (list: string[]) => (list.length ? `${list.slice(0, 3).map((r) => r.slice(0, 160)).join(" | ")}${list.length > 3 ? ` and ${list.length - 3} more` : ""}` : "none");
    out.push(`table ${t}: ${a.length} → ${b.length} rows; removed ${rows(gone)}; added ${rows(added)}`);
  }
  for (const f of new Set([...Object.keys(before.files), ...Object.keys(after.files)])) {
    if (!same(before.files[f], after.files[f])) out.push(`file ${f}: ${JSON.stringify(before.files[f])} → ${JSON.stringify(after.files[f])}`);
  }
  return out;
}

// ---------------------------------------------------------------------------
// The attacks, as data: built here, run in the page by `attack` below.

type Endpoint = { method: Method; path: string; body: Json; mlflow: boolean };

/** Every writing route of labbook's API and of MLflow's (tracking.rs and
 * registry.rs `routes()`, under both MLflow prefixes), with a body that
 * would change the seeded data if it were applied. */
function endpoints(s: Seed): Endpoint[] {
  const r = s.run;
  const labbook: [Method, string, Json][] = [
    ["POST", "/api/v1/runs", { project: "victim", name: "pwned", notes: "pwned" }],
    ["POST", "/api/v1/runs/tags", { ids: [r], add: ["pwned"], remove: ["keep"] }],
    ["POST", "/api/v1/runs/delete", { ids: [r] }],
    ["POST", "/api/v1/runs/restore", { ids: [r] }],
    ["POST", `/api/v1/runs/${r}/log`, { series: { pwned: { steps: [9], ts_ms: [9], values: [9] } }, patch: { status: "failed", add_tags: ["pwned"] } }],
    ["POST", `/api/v1/runs/${r}/environment`, { pwned: "pwned" }],
    ["POST", `/api/v1/runs/${r}/notes`, { text: "pwned" }],
    ["POST", "/api/v1/projects/victim/notebook", { text: "pwned" }],
  ];
  const e = s.experiment;
  const m = s.mlRun;
  const v = { name: "victim-model", version: "1" };
  const mlflow: [Method, string, Json][] = [
    // tracking.rs
    ["POST", "/experiments/create", { name: "pwned" }],
    ["POST", "/experiments/update", { experiment_id: e, new_name: "pwned" }],
    ["POST", "/experiments/delete", { experiment_id: e }],
    ["POST", "/experiments/restore", { experiment_id: e }],
    ["POST", "/experiments/set-experiment-tag", { experiment_id: e, key: "owner", value: "pwned" }],
    ["POST", "/experiments/delete-experiment-tag", { experiment_id: e, key: "owner" }],
    ["POST", "/runs/create", { experiment_id: e, run_name: "pwned", start_time: 1 }],
    ["POST", "/runs/update", { run_id: m, status: "KILLED", end_time: 2, run_name: "pwned" }],
    ["POST", "/runs/delete", { run_id: m }],
    ["POST", "/runs/restore", { run_id: m }],
    ["POST", "/runs/log-metric", { run_id: m, key: "acc", value: 0, timestamp: 5, step: 1, pwned: "pwned" }],
    ["POST", "/runs/log-parameter", { run_id: m, key: "pwned", value: "pwned" }],
    ["POST", "/runs/log-batch", { run_id: m, metrics: [{ key: "acc", value: 0, timestamp: 6, step: 2 }], params: [{ key: "beta", value: "1" }], tags: [{ key: "owner", value: "pwned" }] }],
    ["POST", "/runs/set-tag", { run_id: m, key: "owner", value: "pwned" }],
    ["POST", "/runs/delete-tag", { run_id: m, key: "owner" }],
    ["POST", "/runs/log-inputs", { run_id: m, datasets: [{ dataset: { name: "pwned", digest: "d", source_type: "local", source: "pwned" } }] }],
    ["POST", "/runs/outputs", { run_id: m, models: [{ model_id: s.model, step: 0 }] }],
    ["POST", "/runs/log-model", { run_id: m, model_json: JSON.stringify({ artifact_path: "pwned", flavors: {} }) }],
    // registry.rs
    ["POST", "/logged-models", { experiment_id: e, name: "pwned" }],
    ["PATCH", `/logged-models/${s.model}`, { status: "LOGGED_MODEL_UPLOAD_FAILED" }],
    ["DELETE", `/logged-models/${s.model}`, {}],
    ["PATCH", `/logged-models/${s.model}/tags`, { tags: [{ key: "owner", value: "pwned" }] }],
    ["DELETE", `/logged-models/${s.model}/tags/owner`, {}],
    ["POST", `/logged-models/${s.model}/params`, { params: [{ key: "pwned", value: "pwned" }] }],
    ["POST", "/registered-models/create", { name: "pwned" }],
    ["POST", "/registered-models/rename", { name: "victim-model", new_name: "pwned" }],
    ["PATCH", "/registered-models/update", { name: "victim-model", description: "pwned" }],
    ["DELETE", "/registered-models/delete", { name: "victim-model" }],
    ["POST", "/registered-models/set-tag", { name: "victim-model", key: "owner", value: "pwned" }],
    ["DELETE", "/registered-models/delete-tag", { name: "victim-model", key: "owner" }],
    ["POST", "/registered-models/alias", { ...v, alias: "pwned" }],
    ["DELETE", "/registered-models/alias", { name: "victim-model", alias: "champion" }],
    ["POST", "/model-versions/create", { name: "victim-model", source: "mlflow-artifacts:/pwned", run_id: m }],
    ["PATCH", "/model-versions/update", { ...v, description: "pwned" }],
    ["DELETE", "/model-versions/delete", v],
    ["POST", "/model-versions/transition-stage", { ...v, stage: "Archived", archive_existing_versions: "true" }],
    ["POST", "/model-versions/set-tag", { ...v, key: "owner", value: "pwned" }],
    ["DELETE", "/model-versions/delete-tag", { ...v, key: "owner" }],
  ];
  return [
    ...labbook.map(([method, path, body]) => ({ method, path, body, mlflow: false })),
    ...["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"].flatMap((prefix) => mlflow.map(([method, p, body]) => ({ method, path: prefix + p, body, mlflow: true }))),
  ];
}

/** The GET endpoints that hold the seeded data. */
function reads(s: Seed): string[] {
  return [
    "/api/v1/projects",
    "/api/v1/projects/victim/runs",
    `/api/v1/runs/${s.run}`,
    `/api/v1/runs/${s.run}/output`,
    `/api/v1/runs/${s.run}/replays`,
    `/api/v1/series?runs=${s.run}&keys=loss`,
    "/api/v1/projects/victim/notebook",
    "/api/2.0/mlflow/experiments/search?max_results=100",
    `/api/2.0/mlflow/runs/get?run_id=${s.mlRun}`,
    "/api/2.0/mlflow/registered-models/search",
    `/ajax-api/2.0/mlflow/runs/get?run_id=${s.mlRun}`,
    `/api/2.0/mlflow-artifacts/artifacts/${s.artifactBase}/secret.txt`,
    `/get-artifact?run_uuid=${s.mlRun}&path=secret.txt`,
  ];
}

type Step =
  | { kind: "form"; label: string; url: string; enctype: string; fields: [string, string][] }
  | { kind: "fetch"; label: string; url: string; method: string; mode: "cors" | "no-cors" | "same-origin"; contentType?: string; body?: string }
  | { kind: "beacon"; label: string; url: string; body: string }
  | { kind: "eventsource"; label: string; url: string }
  | { kind: "embed"; label: string; tag: "img" | "script" | "link" | "iframe"; url: string };

/** What the page observed. `text` is set only when the page could read
 * something of the answer (a body, a document, an event, a stylesheet). */
type Seen = { label: string; kind: string; outcome: string; status?: number; text?: string };

/** The text/plain form trick: the browser sends `name=value`, so a name
 * that opens a JSON string and a value that closes it make the body JSON.
 * The `=` lands inside the last "pwned" string, or in a key of its own. */
function smuggle(body: Json): [string, string] {
  const json = JSON.stringify(body);
  const at = json.lastIndexOf("pwned");
  if (at >= 0) return [json.slice(0, at + 5), json.slice(at + 5)];
  return [`{"pwned":"`, `",${json.slice(1)}`];
}

const scalar = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));

/** Which HTML form variants of an endpoint a page submits. Each form is a
 * navigation, which costs Chromium a frame commit (~0.1 s of CPU): the full
 * matrix (every variant from both origins against both servers, 1,300
 * forms) takes minutes on a small machine. By default each (endpoint,
 * variant) pair is submitted once, by one of the four (origin, server)
 * pairings in turn: every endpoint gets every encoding, each pairing sees
 * every encoding and posts a form to every MLflow endpoint (and to three
 * of four labbook ones, which take three variants);
 * LABBOOK_HOSTILE_FULL=1 submits all of them everywhere. The cheap attacks
 * (fetch, beacon, CORS, embeds) always run in full everywhere. */
type FormShare = (endpoint: number, variant: number) => boolean;
const FULL = !!process.env.LABBOOK_HOSTILE_FULL;

function hostileSteps(base: string, s: Seed, share: FormShare): Step[] {
  const steps: Step[] = [];
  for (const [e, ep] of endpoints(s).entries()) {
    const url = base + ep.path;
    const json = JSON.stringify(ep.body);
    const fields = Object.entries(ep.body).map(([k, v]): [string, string] => [k, scalar(v)]);
    const query = `${url}?${new URLSearchParams(fields)}`;
    const what = `${ep.method} ${ep.path}`;
    const forms: Step[] = [
      { kind: "form", label: `form text/plain JSON → ${what}`, url, enctype: "text/plain", fields: [smuggle(ep.body)] },
      { kind: "form", label: `form urlencoded → ${what}`, url, enctype: "application/x-www-form-urlencoded", fields },
      { kind: "form", label: `form multipart → ${what}`, url, enctype: "multipart/form-data", fields },
    ];
    // MLflow reads a request's fields from the query string too.
    if (ep.mlflow) forms.push({ kind: "form", label: `form query string, empty body → ${what}`, url: query, enctype: "application/x-www-form-urlencoded", fields: [] });
    steps.push(...forms.filter((_, v) => share(e, v)));
    steps.push({ kind: "fetch", label: `no-cors text/plain POST → ${what}`, url, method: "POST", mode: "no-cors", contentType: "text/plain", body: json });
    steps.push({ kind: "beacon", label: `sendBeacon → ${what}`, url, body: json });
    steps.push({ kind: "fetch", label: `cors application/json ${what}`, url, method: ep.method, mode: "cors", contentType: "application/json", body: json });
    if (ep.method !== "POST") steps.push({ kind: "fetch", label: `no-cors ${what}`, url, method: ep.method, mode: "no-cors", contentType: "text/plain", body: json });
    if (ep.mlflow) steps.push({ kind: "fetch", label: `no-cors POST query string → ${what}`, url: query, method: "POST", mode: "no-cors" });
  }
  // The artifact proxy takes raw bodies: PUT and DELETE, which no form or
  // no-cors fetch can send, and every form or fetch that can.
  for (const prefix of ["/api/2.0/mlflow-artifacts/artifacts", "/ajax-api/2.0/mlflow-artifacts/artifacts"]) {
    const put = `${base}${prefix}/${s.artifactBase}/pwned.txt`;
    const secret = `${base}${prefix}/${s.artifactBase}/secret.txt`;
    steps.push({ kind: "fetch", label: `cors PUT ${prefix}/…/pwned.txt`, url: put, method: "PUT", mode: "cors", contentType: "text/plain", body: "pwned" });
    steps.push({ kind: "fetch", label: `no-cors PUT ${prefix}/…/secret.txt`, url: secret, method: "PUT", mode: "no-cors", contentType: "text/plain", body: "pwned" });
    steps.push({ kind: "fetch", label: `cors DELETE ${prefix}/%2e`, url: `${base}${prefix}/%2e`, method: "DELETE", mode: "cors" });
    steps.push({ kind: "fetch", label: `cors DELETE ${prefix}/…/secret.txt`, url: secret, method: "DELETE", mode: "cors" });
    steps.push({ kind: "fetch", label: `no-cors DELETE ${prefix}/…/secret.txt`, url: secret, method: "DELETE", mode: "no-cors" });
    steps.push({ kind: "fetch", label: `no-cors POST ${prefix}/…/pwned.txt`, url: put, method: "POST", mode: "no-cors", contentType: "text/plain", body: "pwned" });
    steps.push({ kind: "form", label: `form multipart → ${prefix}/…/secret.txt`, url: secret, enctype: "multipart/form-data", fields: [["file", "pwned"]] });
    steps.push({ kind: "beacon", label: `sendBeacon → ${prefix}/…/pwned.txt`, url: put, body: "pwned" });
  }
  // Reads: nothing of any answer may reach the page.
  for (const path of [...reads(s), "/api/v1/events?project=victim"]) {
    const url = base + path;
    steps.push({ kind: "fetch", label: `cors GET ${path}`, url, method: "GET", mode: "cors" });
    steps.push({ kind: "fetch", label: `no-cors GET ${path}`, url, method: "GET", mode: "no-cors" });
    // A file download in a frame is a download, not a document: no frame.
    const tags = path.includes("artifact") ? (["img", "script", "link"] as const) : (["img", "script", "link", "iframe"] as const);
    for (const tag of tags) steps.push({ kind: "embed", label: `<${tag}> ${path}`, tag, url });
  }
  steps.push({ kind: "fetch", label: "cors POST application/json /api/2.0/mlflow/runs/search", url: `${base}/api/2.0/mlflow/runs/search`, method: "POST", mode: "cors", contentType: "application/json", body: JSON.stringify({ experiment_ids: [s.experiment] }) });
  steps.push({ kind: "eventsource", label: "EventSource /api/v1/events?project=victim", url: `${base}/api/v1/events?project=victim` });
  // The dashboard: never framed, never read.
  for (const path of ["/", "/p/victim", `/p/victim/run/${s.run}`]) {
    for (const tag of ["iframe", "script", "link"] as const) steps.push({ kind: "embed", label: `<${tag}> ${path}`, tag, url: base + path });
    steps.push({ kind: "fetch", label: `cors GET ${path}`, url: base + path, method: "GET", mode: "cors" });
  }
  return steps;
}

/** The same-origin requests a rebound page makes: every read, JSON to
 * every writing endpoint, the artifact proxy's PUT and DELETE, the
 * dashboard itself. */
function rebindSteps(s: Seed): Step[] {
  const steps: Step[] = [];
  for (const path of ["/", "/health", "/version", `/p/victim/run/${s.run}`, ...reads(s)]) steps.push({ kind: "fetch", label: `GET ${path}`, url: path, method: "GET", mode: "same-origin" });
  steps.push({ kind: "fetch", label: "POST /api/2.0/mlflow/runs/search", url: "/api/2.0/mlflow/runs/search", method: "POST", mode: "same-origin", contentType: "application/json", body: JSON.stringify({ experiment_ids: [s.experiment] }) });
  for (const ep of endpoints(s)) steps.push({ kind: "fetch", label: `${ep.method} ${ep.path}`, url: ep.path, method: ep.method, mode: "same-origin", contentType: "application/json", body: JSON.stringify(ep.body) });
  const art = `/api/2.0/mlflow-artifacts/artifacts/${s.artifactBase}`;
  steps.push({ kind: "fetch", label: `PUT ${art}/secret.txt`, url: `${art}/secret.txt`, method: "PUT", mode: "same-origin", contentType: "application/octet-stream", body: "pwned" });
  steps.push({ kind: "fetch", label: `DELETE ${art}/secret.txt`, url: `${art}/secret.txt`, method: "DELETE", mode: "same-origin" });
  steps.push({ kind: "fetch", label: "DELETE /api/2.0/mlflow-artifacts/artifacts/%2e", url: "/api/2.0/mlflow-artifacts/artifacts/%2e", method: "DELETE", mode: "same-origin" });
  steps.push({ kind: "eventsource", label: "EventSource /api/v1/events?project=victim", url: "/api/v1/events?project=victim" });
  return steps;
}

/** Runs in the attacking page: every step, a few at a time, each waiting
 * for its own outcome (a load, an error, an answer) with a bound. */
async function attack({ steps, workers, boundMs }: { steps: Step[]; workers: number; boundMs: number }): Promise<Seen[]> {
  const seen: Seen[] = [];
  const errors: string[] = [];
  addEventListener("error", (e) => errors.push(String(e.message)));
  const settle = (target: EventTarget, ok: string[], bad: string[]) =>
    new Promise<string>((res) => {
      const timer = setTimeout(() => res("no event (bound reached)"), boundMs);
      const done = (name: string) => () => {
        clearTimeout(timer);
        res(name);
      };
      for (const n of [...ok, ...bad]) target.addEventListener(n, done(n), { once: true });
    });
  /** A frame's document, if the page can reach it. */
  const documentOf = (f: HTMLIFrameElement): string | undefined => {
    try {
      const d = f.contentDocument;
      // The frame's own initial about:blank is the page's, not an answer.
      return d && d.URL !== "about:blank" ? `${d.URL}\n${d.documentElement?.outerHTML ?? ""}` : undefined;
    } catch {
      return undefined;
    }
  };
  const one = async (step: Step, frame: HTMLIFrameElement): Promise<Seen> => {
    const base = { label: step.label, kind: step.kind };
    switch (step.kind) {
      case "form": {
        const form = document.createElement("form");
        form.method = "POST";
        form.action = step.url;
        form.enctype = step.enctype;
        form.target = frame.name;
        for (const [name, value] of step.fields) {
          const input = document.createElement("input");
          input.type = "hidden";
          input.name = name;
          input.value = value;
          form.append(input);
        }
        document.body.append(form);
        const loaded = settle(frame, ["load"], []);
        // Fields named like the form's own methods (`remove`, `submit`)
        // shadow them: call the prototypes'.
        HTMLFormElement.prototype.submit.call(form);
        const outcome = await loaded;
        Element.prototype.remove.call(form);
        return { ...base, outcome, text: documentOf(frame) };
      }
      case "fetch": {
        // Bounded: an answer that never comes is no answer.
        const abort = new AbortController();
        const timer = setTimeout(() => abort.abort(), boundMs);
        try {
          const headers: Record<string, string> = step.contentType ? { "Content-Type": step.contentType } : {};
          const res = await fetch(step.url, { method: step.method, mode: step.mode, headers, body: step.body, credentials: "include", signal: abort.signal });
          if (step.url.includes("/events")) {
            // A stream: what arrives first is what could be read.
            const reader = res.body?.getReader();
            const first = reader ? await reader.read().catch(() => undefined) : undefined;
            await reader?.cancel().catch(() => undefined);
            const text = first?.value ? new TextDecoder().decode(first.value) : "";
            return { ...base, outcome: res.type, status: res.status, text: text || undefined };
          }
          const text = await res.text();
          return { ...base, outcome: res.type, status: res.status, text: text || undefined };
        } catch (e) {
          return { ...base, outcome: `rejected: ${String(e)}` };
        } finally {
          clearTimeout(timer);
        }
      }
      case "beacon": {
        let queued: boolean;
        try {
          queued = navigator.sendBeacon(step.url, step.body);
        } catch (e) {
          return { ...base, outcome: `threw: ${String(e)}` };
        }
        return { ...base, outcome: queued ? "queued" : "refused by the browser" };
      }
      case "eventsource": {
        const es = new EventSource(step.url);
        const data: string[] = [];
        es.onmessage = (e) => data.push(String(e.data));
        for (const name of ["runs"]) es.addEventListener(name, (e) => data.push(String((e as MessageEvent).data)));
        const outcome = await settle(es, ["message", "runs"], ["error"]);
        const state = es.readyState;
        es.close();
        return { ...base, outcome: `${outcome} (readyState ${state})`, text: data.join("\n") || undefined };
      }
      case "embed": {
        if (step.tag === "img") {
          const img = new Image();
          const ev = settle(img, ["load"], ["error"]);
          img.src = step.url;
          const outcome = await ev;
          return { ...base, outcome: `${outcome} ${img.naturalWidth}x${img.naturalHeight}` };
        }
        if (step.tag === "script") {
          // Frames show as index keys of window; anything else is new.
          const keys = () => Object.keys(window).filter((k) => !/^\d+$/.test(k));
          const before = new Set(keys());
          const s = document.createElement("script");
          const ev = settle(s, ["load"], ["error"]);
          s.src = step.url;
          document.head.append(s);
          const outcome = await ev;
          const globals = keys().filter((k) => !before.has(k));
          return { ...base, outcome, text: globals.length ? `new globals: ${globals.join(",")}` : undefined };
        }
        if (step.tag === "link") {
          const l = document.createElement("link");
          l.rel = "stylesheet";
          const ev = settle(l, ["load"], ["error"]);
          l.href = step.url;
          document.head.append(l);
          const outcome = await ev;
          let text: string | undefined;
          try {
            const rules = l.sheet?.cssRules;
            text = rules && rules.length ? [...rules].map((r) => r.cssText).join("\n") : undefined;
          } catch {
            text = undefined;
          }
          l.remove();
          return { ...base, outcome, text };
        }
        const f = document.createElement("iframe");
        f.style.display = "none";
        const ev = settle(f, ["load"], ["error"]);
        f.src = step.url;
        document.body.append(f);
        const outcome = await ev;
        return { ...base, outcome, text: documentOf(f) };
      }
    }
  };
  let next = 0;
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      const frame = document.createElement("iframe");
      // Names unique to this run: a form targets the first frame of a name.
      frame.name = `attack-target-${w}-${Math.random().toString(36).slice(2)}`;
      frame.style.display = "none";
      document.body.append(frame);
      for (let i = next++; i < steps.length; i = next++) seen.push(await one(steps[i], frame));
    }),
  );
  // A cross-origin script's errors are muted to "Script error.": nothing
  // of the answer is in them. Anything else would be.
  const told = errors.filter((e) => e !== "Script error.");
  if (told.length) seen.push({ label: "window error events", kind: "errors", outcome: "errors", text: told.join("\n") });
  return seen;
}

// ---------------------------------------------------------------------------
// What the browser sent and got, as the network saw it.

type Hit = { page: string; request: Request; method: string; url: string; type: string; status?: number; failure?: string; done: boolean };

function watch(context: BrowserContext, ports: number[], pageName: (r: Request) => string) {
  const hits: Hit[] = [];
  const byRequest = new Map<Request, Hit>();
  const ours = (u: string) => {
    const url = new URL(u);
    return ports.includes(Number(url.port));
  };
  context.on("request", (r) => {
    if (!ours(r.url())) return;
    const hit: Hit = { page: pageName(r), request: r, method: r.method(), url: r.url(), type: r.resourceType(), done: false };
    hits.push(hit);
    byRequest.set(r, hit);
  });
  context.on("response", (r) => {
    const hit = byRequest.get(r.request());
    if (hit) hit.status = r.status();
  });
  context.on("requestfinished", (r) => {
    const hit = byRequest.get(r);
    if (hit) hit.done = true;
  });
  context.on("requestfailed", (r) => {
    const hit = byRequest.get(r);
    if (hit) {
      hit.done = true;
      hit.failure = r.failure()?.errorText;
    }
  });
  /** Waits (with a bound) until every request to the servers has been
   * answered or has failed (beacons have no event in the page), and
   * returns those still open. An event stream is open for good once it
   * is answered: it is not waited for. */
  const settled = async (): Promise<Hit[]> => {
    const open = () => hits.filter((h) => !h.done && !(h.status !== undefined && new URL(h.url).pathname === "/api/v1/events"));
    await waitFor("every attack request to end", async () => (open().length ? undefined : true), 15_000).catch(() => undefined);
    return open();
  };
  return { hits, settled };
}

// ---------------------------------------------------------------------------
// The hostile site: another loopback origin (`localhost:H` is another site
// than `127.0.0.1:P`; `127.0.0.1:H` the same site, another origin).

async function hostileSite(): Promise<{ server: HttpServer; port: number }> {
  const server = createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
    res.end(`<!doctype html><meta charset="utf-8"><title>Totally normal page</title><h1>Nothing to see at ${req.headers.host ?? ""}</h1>`);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: (server.address() as AddressInfo).port };
}

function secretsIn(text: string, servers: Labbook[]): string[] {
  return [...new Set(servers.flatMap((s) => s.seed.secrets))].filter((x) => text.includes(x));
}

// ---------------------------------------------------------------------------

test.describe("a hostile page against labbook serve and labbook ui", () => {
  let tmp = "";
  const servers: Labbook[] = [];

  test.beforeAll(async () => {
    test.setTimeout(60_000);
    if (!existsSync(BIN)) throw new Error(`the labbook binary is not at ${BIN} (set LABBOOK_BIN)`);
    if (!existsSync(PYTHON)) throw new Error(`no Python at ${PYTHON} (set PYTHON)`);
    tmp = mkdtempSync(join(tmpdir(), "labbook-hostile-"));
    for (const kind of ["serve", "ui"] as const) {
      const started = await startLabbook(kind, join(tmp, kind));
      servers.push({ ...started, seed: await seed(started.url) });
    }
  });

  test.afterAll(async () => {
    await Promise.all(servers.map((s) => stop(s.proc)));
    if (tmp && !process.env.LABBOOK_E2E_KEEP) rmSync(tmp, { recursive: true, force: true });
  });

  test("control: a same-origin write from the server's own page changes the store, and the snapshot shows it", async ({ browser }) => {
    for (const s of servers) {
      const before = await snapshot(s.store);
      expect(changes(before, await snapshot(s.store)), `${s.kind}: two snapshots of an idle store`).toEqual([]);
      const context = await browser.newContext();
      try {
        const page = await context.newPage();
        await page.goto(`${s.url}/`);
        const statuses = await page.evaluate(
          async ({ run, mlRun }) => {
            const post = async (path: string, body: unknown) =>
              (await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })).status;
            return [await post(`/api/v1/runs/${run}/notes`, { text: "control: a legitimate note" }), await post("/api/2.0/mlflow/runs/set-tag", { run_id: mlRun, key: "control", value: "legitimate" })];
          },
          { run: s.seed.run, mlRun: s.seed.mlRun },
        );
        expect(statuses, `${s.kind}: the dashboard's own origin may write`).toEqual([200, 200]);
      } finally {
        await context.close();
      }
      const diff = changes(before, await snapshot(s.store));
      expect(diff.length, `${s.kind}: the harness sees the write:\n${diff.join("\n")}`).toBeGreaterThan(0);
      expect(diff.join("\n")).toContain("control: a legitimate note");
    }
  });

  test("pages on other loopback origins (cross-site and same-site) can neither change the stores nor read them", async ({ browser }) => {
    // ~50 s on a busy 2-core machine; the bound leaves room for a busier one.
    test.setTimeout(FULL ? 600_000 : 180_000);
    const before = await Promise.all(servers.map((s) => snapshot(s.store)));
    const site = await hostileSite();
    const origins = [`http://localhost:${site.port}`, `http://127.0.0.1:${site.port}`];
    const context = await browser.newContext();
    const pages = new Map<Page, string>();
    const net = watch(context, servers.map((s) => s.port), (r) => {
      try {
        return pages.get(r.frame().page()) ?? "?";
      } catch {
        return "?"; // a beacon or a worker: no frame
      }
    });
    const seen = new Map<string, Seen[]>();
    const sites = new Map<string, Set<string>>();
    const unsettled: string[] = [];
    const framed: string[] = [];
    let steps = 0;
    try {
      await Promise.all(
        origins.map(async (origin) => {
          const page = await context.newPage();
          pages.set(page, origin);
          await page.goto(`${origin}/attack.html`);
          for (const [j, s] of servers.entries()) {
            const pairing = 2 * origins.indexOf(origin) + j;
            const plan = hostileSteps(s.url, s.seed, (e, v) => FULL || (e + v) % 4 === pairing);
            steps += plan.length;
            seen.set(`${origin} → ${s.kind}`, await page.evaluate(attack, { steps: plan, workers: 8, boundMs: 10_000 }));
          }
          // A document of a server shown in a frame of the page (refused,
          // X-Frame-Options and frame-ancestors leave Chromium's error page).
          for (const f of page.frames()) if (servers.some((s) => f.url().startsWith(s.url))) framed.push(`${origin}: ${f.url()}`);
        }),
      );
      unsettled.push(...(await net.settled()).map((h) => `${h.page} ${h.type} ${h.method} ${h.url}`));
      // Who the servers were told the forms came from.
      const posts = net.hits.filter((h) => h.type === "document" && h.method === "POST");
      for (const [h, hdr] of await Promise.all(posts.map(async (h) => [h, await h.request.allHeaders()] as const))) {
        const key = `${h.page} (Origin ${hdr["origin"]})`;
        (sites.get(key) ?? sites.set(key, new Set()).get(key))?.add(hdr["sec-fetch-site"] ?? "none");
      }
    } finally {
      await context.close();
      site.server.close();
      site.server.closeAllConnections();
    }

    // 1. Nothing readable crossed.
    const readable: string[] = [];
    for (const [where, list] of seen) {
      for (const o of list) {
        if (o.text) readable.push(`${where}: ${o.label}: ${o.outcome} ${o.status ?? ""} ${o.text.slice(0, 200)}`);
        if (o.kind === "fetch" && o.label.startsWith("cors") && !o.outcome.startsWith("rejected")) readable.push(`${where}: ${o.label}: a CORS answer (${o.status}) reached the page`);
        const leaked = secretsIn(`${o.outcome} ${o.text ?? ""}`, servers);
        if (leaked.length) readable.push(`${where}: ${o.label}: the page saw ${leaked.join(", ")}`);
      }
    }
    expect.soft(readable, "what the hostile pages could read").toEqual([]);
    expect.soft(framed, "documents of the servers that loaded in frames of the hostile pages").toEqual([]);
    expect.soft(unsettled, "requests still open after the attacks").toEqual([]);

    // 2. The attacks reached the servers, from both kinds of origin, and
    //    every answer the network saw to a write was the guard's 403.
    const forms = net.hits.filter((h) => h.type === "document" && h.method === "POST");
    const expectedForms = [...seen.values()].flat().filter((o) => o.kind === "form").length;
    // Playwright misses the odd request of a frame that moves between
    // processes (an error page to the next navigation): a few per cent.
    expect.soft(forms.length, `form posts seen reaching a server, of ${expectedForms} submitted`).toBeGreaterThanOrEqual(Math.floor(expectedForms * 0.9));
    expect.soft(forms.length).toBeLessThanOrEqual(expectedForms);
    const unanswered = [...seen.values()].flat().filter((o) => o.kind === "form" && o.outcome !== "load");
    expect.soft(unanswered.map((o) => `${o.label}: ${o.outcome}`), "form submissions whose frame never loaded").toEqual([]);
    expect.soft(Object.fromEntries([...sites].map(([k, v]) => [k, [...v]])), "where the forms came from, as the servers were told").toEqual({
      [`${origins[0]} (Origin ${origins[0]})`]: ["cross-site"],
      [`${origins[1]} (Origin ${origins[1]})`]: ["same-site"],
    });
    const writes = net.hits.filter((h) => !["GET", "HEAD", "OPTIONS"].includes(h.method));
    const accepted = writes.filter((h) => h.status !== undefined && h.status !== 403).map((h) => `${h.page} ${h.type} ${h.method} ${h.url} → ${h.status}`);
    expect.soft(accepted, "writes a server answered with anything but the guard's 403").toEqual([]);
    const answeredReads = net.hits.filter((h) => h.method === "GET" && h.status === 200 && h.type !== "document" && new URL(h.url).pathname.startsWith("/api"));
    expect.soft(answeredReads.map((h) => `${h.page} ${h.type} ${h.url}`), "API reads embedded by another origin that the server answered").toEqual([]);

    // 3. Byte for byte the same stores, and both servers alive.
    for (const [i, s] of servers.entries()) {
      expect.soft(changes(before[i], await snapshot(s.store)), `${s.kind}: the store changed`).toEqual([]);
      const health = await fetch(`${s.url}/health`);
      expect.soft(`${health.status} ${await health.text()}`, `${s.kind} answers /health`).toBe("200 ok");
      expect.soft(s.proc.exitCode, `${s.kind} is running; its output:\n${s.output()}`).toBeNull();
    }
    const summary = [...seen].map(([k, v]) => `${k}: ${v.length} attempts`).join("; ");
    const description = `${steps} attempts, ${net.hits.length} requests sent to the servers (${forms.length} form posts seen); ${summary}`;
    test.info().annotations.push({ type: "attacks", description });
    console.log(`[hostile] ${description}`);
  });

  test("a DNS-rebound page, same-origin with the servers, gets 403 and no data", async ({}, testInfo) => {
    const before = await Promise.all(servers.map((s) => snapshot(s.store)));
    const launch = (testInfo.project.use.launchOptions ?? {}) as LaunchOptions;
    // rebind.test resolves to 127.0.0.1, as the attacker's name does once
    // rebound. Chromium's Local Network Access checks (a public page may
    // not call a loopback address) are off: the guard must hold in every
    // browser, and the page here is served by page.route, not from an
    // address Chromium could classify.
    const browser: Browser = await chromium.launch({
      ...launch,
      args: [...(launch.args ?? []), "--host-resolver-rules=MAP rebind.test 127.0.0.1", "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights,PrivateNetworkAccessRespectPreflightResults"],
    });
    const results: { server: Labbook; seen: Seen[]; addresses: string[] }[] = [];
    try {
      for (const s of servers) {
        const context = await browser.newContext();
        try {
          const page = await context.newPage();
          const origin = `http://rebind.test:${s.port}`;
          await page.route(`${origin}/attack.html`, (route) =>
            route.fulfill({ status: 200, contentType: "text/html; charset=utf-8", body: "<!doctype html><title>rebound</title><h1>Same origin as labbook now</h1>" }),
          );
          const addresses: Promise<string>[] = [];
          page.on("response", (r) => {
            if (r.url().startsWith(origin) && !r.url().endsWith("/attack.html")) addresses.push(r.serverAddr().then((a) => `${a?.ipAddress}:${a?.port}`));
          });
          await page.goto(`${origin}/attack.html`);
          expect(await page.evaluate(() => location.origin)).toBe(origin);
          const seen = await page.evaluate(attack, { steps: rebindSteps(s.seed), workers: 4, boundMs: 10_000 });
          results.push({ server: s, seen, addresses: await Promise.all(addresses) });
        } finally {
          await context.close();
        }
      }
    } finally {
      await browser.close();
    }

    for (const { server: s, seen, addresses } of results) {
      // The requests reached the real server, as rebind.test:PORT, and its
      // answer names that Host: the guard saw it.
      expect.soft(new Set(addresses), `${s.kind}: where the rebound requests went`).toEqual(new Set([`127.0.0.1:${s.port}`]));
      const wrong: string[] = [];
      for (const o of seen) {
        if (o.kind === "eventsource") {
          if (o.text || !o.outcome.startsWith("error")) wrong.push(`${o.label}: ${o.outcome} ${o.text ?? ""}`);
          continue;
        }
        const text = o.text ?? "";
        const leaked = secretsIn(text, servers);
        const refusal = o.status === 403 && /"(FORBIDDEN_HOST|PERMISSION_DENIED)"/.test(text) && text.includes(`the Host \\"rebind.test\\" is not served`);
        if (!refusal || leaked.length) wrong.push(`${o.label}: ${o.status} ${leaked.length ? `LEAKED ${leaked.join(", ")}: ` : ""}${text.slice(0, 300)}`);
      }
      expect.soft(wrong, `${s.kind}: rebound requests not refused by the Host guard`).toEqual([]);
    }
    for (const [i, s] of servers.entries()) {
      expect.soft(changes(before[i], await snapshot(s.store)), `${s.kind}: the store changed`).toEqual([]);
      const health = await fetch(`${s.url}/health`);
      expect.soft(`${health.status} ${await health.text()}`, `${s.kind} answers /health`).toBe("200 ok");
      expect.soft(s.proc.exitCode, `${s.kind} is running; its output:\n${s.output()}`).toBeNull();
    }
  });
});
