// Creates a fresh store, starts the real `labbook serve` on a free port
// (the dashboard and MLflow's tracking API), and fills the store with real
// runs: the spirals demo under `labbook run`, a 200k-point run, 450 small
// runs, nine seeded runs with known curves, an 18-run sweep, a run in a
// dirty git repository of its own, 263 runs most of them nested with
// labbook's own `parent=`, one live run that keeps logging, and projects
// logged by the real `mlflow` client through the server
// (fixtures/mlflow_runs.py: a GridSearchCV autolog, the registry, artifacts
// of every preview kind, nested runs), and versioned artifacts with their
// lineage over three runs (fixtures/artifact_runs.py), and a run replayed
// by `labbook replay` (fixtures/replay_train.py), and project "search": a
// grid sweep run by `labbook sweep`, a `labbook.study()` with the median
// pruner, a queue with a failing job and the project's baseline
// (searchRuns below). Every process it
// starts is stopped when the tests end, and at once when the setup itself
// fails partway.
import { spawn } from "node:child_process";
import type { ChildProcess, SpawnOptions } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BODY_HEADERS } from "./csp";
import { waitFor } from "./wait";

const here = dirname(fileURLToPath(import.meta.url));
const web = resolve(here, "..");
const root = resolve(web, "..");
const dist = join(web, "dist");

export const STATE_FILE = join(web, "test-results", ".e2e-state.json");

/** Set to 1 to serve web/dist to the browser instead of the binary's
 * embedded copy, while iterating on web/ without rebuilding the binary;
 * LABBOOK_E2E_DIST names another build to serve (a mutant built elsewhere,
 * so that web/dist, which `make build` embeds, is never touched). */
export const SERVE_DIST = "LABBOOK_E2E_SERVE_DIST";

/** What the dirty repository's run must show (tests read it from
 * LABBOOK_E2E_CODE). */
/** What fixtures/mlflow_runs.py logged (tests read it from
 * LABBOOK_E2E_MLFLOW). */
export type MlflowFixture = {
  files: { run: string; quadrants: [number, number, number][]; png: [number, number]; parquet_rows: (number | string | boolean)[][] };
  nesting: Record<string, string>;
};

/** What fixtures/artifact_runs.py logged into project "lineage" (tests
 * read it from LABBOOK_E2E_ARTIFACTS): runs A, B, C and the versions'
 * references. */
export type ArtifactsFixture = {
  runs: { a: string; b: string; c: string };
  dataset: string;
  model: string;
  reference: string;
};

/** What the replay fixture made in project "replay" (tests read it from
 * LABBOOK_E2E_REPLAY): an original run and three replays of it (one
 * that reproduced, a what-if `--set noise=1` that diverged at step
 * `divergeStep`, one never checked), and two replays whose originals were
 * deleted, for good (`gone`) and softly (`binned`). */
export type ReplayFixture = {
  original: string;
  reproduced: string;
  diverged: string;
  unchecked: string;
  divergeStep: number;
  gone: { original: string; replay: string };
  binned: { original: string; replay: string };
};

/** What searchRuns made in project "search" (tests read it from
 * LABBOOK_E2E_SEARCH): a 3 × 2 grid sweep whose best beats the baseline, a
 * study with complete and pruned trials whose best does not, the baseline
 * run, and a queue: a job that failed (its last line known) and one still
 * waiting. */
export type SearchFixture = {
  project: string;
  sweep: string;
  study: string;
  baseline: string;
  failedRun: string;
  failedLine: string;
  waiting: string;
};

export type CodeFixture = {
  run: string;
  commit: string;
  branch: string;
  /** The remote as configured, credentials and all. */
  remote: string;
  /** The remote as it must be shown. */
  remoteClean: string;
  /** `git diff HEAD` of the tracked files, the secret-named file left out. */
  diff: string;
  excluded: string[];
  untracked: string[];
  /** Strings that must appear nowhere on the page. */
  secrets: string[];
};

function need(path: string, what: string) {
  if (!existsSync(path)) throw new Error(`${what} not found at ${path}`);
}

// ---------------------------------------------------------------------------
// Processes: every child is tracked until it exits.

const children = new Set<ChildProcess>();
// The runner exiting without the teardown (a crash, Ctrl-C) takes them along.
process.on("exit", () => {
  for (const p of children) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
});

function start(cmd: string, args: string[], opts: SpawnOptions): ChildProcess {
  const p = spawn(cmd, args, opts);
  children.add(p);
  p.once("exit", () => children.delete(p));
  p.once("error", () => children.delete(p));
  return p;
}

/** Runs a command to its end; rejects with its output when it fails
 * (exits with a status not in `ok`). */
function exec(cmd: string, args: string[], opts: SpawnOptions, ok: number[] = [0]): Promise<string> {
  return new Promise((res, rej) => {
    const p = start(cmd, args, { ...opts, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr?.on("data", (d: Buffer) => (err += d.toString()));
    p.once("error", rej);
    p.once("close", (code, signal) => {
      if (code !== null && ok.includes(code)) res(out);
      else rej(new Error(`${[cmd, ...args].join(" ")} failed (${signal ?? code}):\n${err || out}`));
    });
  });
}

/** SIGTERM, then SIGKILL for a process still there after 5 s. */

/** The environment of the fixtures' git commands: no user or system
 * configuration, a fixed author. */
function gitEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return {
    ...env,
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_AUTHOR_NAME: "e2e",
    GIT_AUTHOR_EMAIL: "e2e@example.com",
    GIT_COMMITTER_NAME: "e2e",
    GIT_COMMITTER_EMAIL: "e2e@example.com",
  };
}

async function stop(p: ChildProcess) {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((r) => p.once("exit", () => r()));
  p.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), 5000)));
  if ((await Promise.race([exited, late])) === "late") {
    p.kill("SIGKILL");
    await exited;
  }
  clearTimeout(timer);
}

async function stopAll() {
  await Promise.all([...children].map(stop));
}

// ---------------------------------------------------------------------------
// The dashboard the tests see: the binary's own, which must be web/dist.

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]));
}

function newest(paths: string[]): { path: string; ms: number } {
  let best = { path: "", ms: 0 };
  for (const p of paths) {
    const ms = statSync(p).mtimeMs;
    if (ms > best.ms) best = { path: p, ms };
  }
  return best;
}

/** The files of web/dist the server serves differently (or not at all). */
async function embeddedDiffers(url: string): Promise<string[]> {
  const out: string[] = [];
  for (const file of files(dist)) {
    const rel = relative(dist, file).split("\\").join("/");
    const res = await fetch(`${url}/${rel === "index.html" ? "" : rel}`);
    const served = Buffer.from(await res.arrayBuffer());
    if (!res.ok || !served.equals(readFileSync(file))) out.push(rel);
  }
  return out;
}

// ---------------------------------------------------------------------------
// A git repository of the tests' own: a commit, then an uncommitted change
// to a tracked file, a changed secret-named file and an untracked file.

async function dirtyRepository(dir: string, bin: string, python: string, env: NodeJS.ProcessEnv): Promise<CodeFixture> {
  const repo = join(dir, "code-repo");
  mkdirSync(join(repo, "notes"), { recursive: true });
  const genv = gitEnv(env);
  const git = (...args: string[]) => exec("git", args, { cwd: repo, env: genv });
  const secret = "e2e-secret-env-value-7731";
  const password = "e2e-remote-pass-4410";
  const remote = `https://e2e-user:${password}@git.example.com/team/spirals.git`;
  await git("init", "-q", "-b", "e2e-branch");
  copyFileSync(join(here, "fixtures/code_run.py"), join(repo, "train.py"));
  writeFileSync(join(repo, "params.yaml"), "lr: 0.1\nwidth: 16\nepochs: 20\n");
  writeFileSync(join(repo, ".env"), "API_KEY=committed-placeholder\n");
  await git("add", "train.py", "params.yaml", ".env");
  await git("commit", "-q", "-m", "e2e: the committed state");
  await git("remote", "add", "origin", remote);
  // The uncommitted state the run must record.
  writeFileSync(join(repo, "params.yaml"), "lr: 0.5\nwidth: 16\nepochs: 20\nschedule: cosine\n");
  writeFileSync(join(repo, ".env"), `API_KEY=${secret}\n`);
  writeFileSync(join(repo, "notes/scratch.txt"), "an untracked file\n");
  const commit = (await git("rev-parse", "HEAD")).trim();
  const diff = await git("-c", "diff.relative=false", "diff", "--no-color", "--no-ext-diff", "HEAD", "--", ".", ":(exclude).env");
  await exec(bin, ["run", "--project", "code", "--name", "dirty-code", "--", python, "train.py"], { cwd: repo, env });
  return {
    run: "", // read from the server below
    commit,
    branch: "e2e-branch",
    remote,
    remoteClean: "https://git.example.com/team/spirals.git",
    diff,
    excluded: [".env"],
    untracked: ["notes/scratch.txt"],
    secrets: [secret, password, "e2e-user"],
  };
}

// ---------------------------------------------------------------------------
// Replays: a run of a deterministic script in a git repository of its own
// (fixtures/replay_train.py, committed, with an untracked file so the run
// keeps a code snapshot), replayed by `labbook replay` as it is, as a
// what-if that adds unseeded noise from step 10, and without a check;
// two more originals, each replayed, then deleted (one for good).

async function replayRuns(dir: string, bin: string, python: string, env: NodeJS.ProcessEnv, url: string): Promise<ReplayFixture> {
  const repo = join(dir, "replay-repo");
  mkdirSync(repo, { recursive: true });
  const genv = gitEnv(env);
  const git = (...args: string[]) => exec("git", args, { cwd: repo, env: genv });
  await git("init", "-q", "-b", "main");
  copyFileSync(join(here, "fixtures/replay_train.py"), join(repo, "train.py"));
  await git("add", "train.py");
  await git("commit", "-q", "-m", "e2e: a deterministic training script");
  writeFileSync(join(repo, "NOTES.md"), "Seeds 3, 5 and 6 are the fixture's originals.\n");
  const labbook = (args: string[], ok: number[] = [0]) => exec(bin, args, { cwd: repo, env: genv }, ok);
  const idOf = async (name: string) => {
    const r = (await (await fetch(`${url}/api/v1/projects/replay/runs?filter=${encodeURIComponent(`name = "${name}"`)}`)).json()) as { runs: { id: string }[] };
    const id = r.runs[0]?.id;
    if (!id) throw new Error(`the replay fixture's run ${name} is not in the store`);
    return id;
  };
  type Replays = { replays: { id: string; set: string | null; verdict: string | null }[] };
  const replaysOf = async (id: string) => ((await (await fetch(`${url}/api/v1/runs/${id}/replays`)).json()) as Replays).replays;

  await labbook(["run", "--project", "replay", "--name", "replay-original", "--why", "A seeded run to replay", "--", python, "train.py", "--seed", "3"]);
  const original = await idOf("replay-original");
  await labbook(["replay", original, "--check"]);
  // The what-if diverges: --check exits with 1.
  await labbook(["replay", original, "--set", "noise=1", "--check"], [1]);
  await labbook(["replay", original]);
  const replays = await replaysOf(original);
  const reproduced = replays.find((x) => !x.set && x.verdict === "reproduced")?.id;
  const diverged = replays.find((x) => x.set === "noise=1")?.id;
  const unchecked = replays.find((x) => !x.set && x.verdict === null)?.id;
  if (!reproduced || !diverged || !unchecked) throw new Error(`the replays of ${original} are not what the fixture made: ${JSON.stringify(replays)}`);

  const deletedPair = async (name: string, seed: string, purge: boolean) => {
    await labbook(["run", "--project", "replay", "--name", name, "--", python, "train.py", "--seed", seed]);
    const id = await idOf(name);
    await labbook(["replay", id, "--check"]);
    const replay = (await replaysOf(id))[0]?.id;
    if (!replay) throw new Error(`the replay of ${name} is not in the store`);
    await labbook(purge ? ["rm", "--purge", id] : ["rm", id]);
    return { original: id, replay };
  };
  const gone = await deletedPair("gone-original", "5", true);
  const binned = await deletedPair("binned-original", "6", false);
  return { original, reproduced, diverged, unchecked, divergeStep: 10, gone, binned };
}

// ---------------------------------------------------------------------------
// Searches: a grid sweep run by the real `labbook sweep` over
// fixtures/search_train.py, a study of the real `labbook.study()` with the
// median pruner and the baseline run (fixtures/search_study.py), a failing
// job run by `labbook queue run` and one left waiting, and the baseline
// made so by `labbook baseline set`.

const SEARCH_SWEEP = `program: train.py
project: search
name: grid-lr-width
method: grid
metric:
  name: loss
  goal: minimize
parameters:
  lr:
    values: [0.001, 0.01, 0.1]
  width:
    values: [32, 128]
`;

async function searchRuns(dir: string, bin: string, python: string, env: NodeJS.ProcessEnv, url: string): Promise<SearchFixture> {
  const project = "search";
  const work = join(dir, "search-work");
  mkdirSync(work, { recursive: true });
  // No code snapshots: the trials' folder is no repository worth keeping.
  const senv = { ...env, LABBOOK_SNAPSHOT: "0" };
  const labbook = (args: string[]) => exec(bin, args, { cwd: work, env: senv });
  const studyOut = await exec(python, [join(here, "fixtures/search_study.py")], { cwd: work, env: senv });
  const made = JSON.parse(studyOut.trim().split("\n").filter((l) => l.startsWith("{")).pop() ?? "null") as { baseline: string; study: string } | null;
  if (!made) throw new Error(`fixtures/search_study.py printed no summary:\n${studyOut}`);
  copyFileSync(join(here, "fixtures/search_train.py"), join(work, "train.py"));
  writeFileSync(join(work, "sweep.yaml"), SEARCH_SWEEP);
  const sweep = (JSON.parse(await labbook(["sweep", "create", "--json", "--why", "Which learning rate and width does the small model want?", "sweep.yaml"])) as { id: string }).id;
  await labbook(["sweep", "run", sweep]);
  await labbook(["baseline", "set", made.baseline]);
  const failedLine = "ValueError: shard 7 is truncated";
  await labbook([
    "queue", "add", "--project", project, "--why", "Does the new data loader survive shard 7?", "--",
    "python", "-c", `import sys; print("loading shard 7 of 12"); print(${JSON.stringify(failedLine)}, file=sys.stderr); sys.exit(3)`,
  ]);
  await labbook(["queue", "run", "--project", project]);
  const waiting = "python train.py --lr 0.01 --width 256";
  await labbook(["queue", "add", "--project", project, "--why", "A longer run of the best grid point", "--", ...waiting.split(" ")]);
  const jobs = (await (await fetch(`${url}/api/v1/projects/${project}/queue`)).json()) as { jobs: { state: string; run_id: string | null }[] };
  const failedRun = jobs.jobs.find((j) => j.state === "failed")?.run_id;
  if (!failedRun) throw new Error(`the search fixture's queue has no failed job: ${JSON.stringify(jobs)}`);
  return { project, sweep, study: made.study, baseline: made.baseline, failedRun, failedLine, waiting };
}

// ---------------------------------------------------------------------------

export default async function globalSetup(): Promise<() => Promise<void>> {
  const bin = resolve(web, process.env.LABBOOK_BIN ?? join(root, "target/release/labbook"));
  const python = resolve(web, process.env.PYTHON ?? join(root, ".venv/bin/python"));
  const mlflowPython = resolve(web, process.env.MLFLOW_PYTHON ?? join(root, ".venv-mlflow/bin/python"));
  need(bin, "the labbook binary (build it with `make build`, or set LABBOOK_BIN)");
  need(python, "Python with labbook installed (set PYTHON)");
  need(mlflowPython, "Python with mlflow and scikit-learn (tests/mlflow/requirements.txt; `make .venv-mlflow/.deps`, or set MLFLOW_PYTHON)");
  need(join(dist, "index.html"), "the built dashboard (`npm run build` in web/, then `make build` for the binary)");
  const other = process.env[SERVE_DIST] === "1" ? process.env.LABBOOK_E2E_DIST : undefined;
  if (other) {
    need(join(other, "index.html"), "LABBOOK_E2E_DIST's index.html");
    process.env.LABBOOK_E2E_DIST_DIR = resolve(other);
  } else {
    // web/dist is what the binary embeds and what the tests compare it with:
    // it must be built from the current sources.
    const src = newest([...files(join(web, "src")), ...files(join(web, "public")), join(web, "index.html")]);
    const built = newest(files(dist));
    if (src.ms > built.ms) {
      throw new Error(`web/dist is older than ${relative(web, src.path)}: run \`npm run build\` in web/ (and \`make build\` for the binary)`);
    }
    process.env.LABBOOK_E2E_DIST_DIR = dist;
  }

  const tmp = mkdtempSync(join(tmpdir(), "labbook-e2e-"));
  try {
    return await fill(tmp, bin, python, mlflowPython);
  } catch (e) {
    await stopAll();
    if (!process.env.LABBOOK_E2E_KEEP) rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

async function fill(tmp: string, bin: string, python: string, mlflowPython: string): Promise<() => Promise<void>> {
  const store = join(tmp, ".labbook");
  const env = { ...process.env, LABBOOK_DIR: store, PATH: `${dirname(python)}:${process.env.PATH ?? ""}`, NO_COLOR: "1" };
  const t0 = Date.now();

  // The real server first, on a port the OS picks: `serve`, since the
  // mlflow client logs through its MLflow API while the other fixtures run.
  const server = start(bin, ["serve", "--host", "127.0.0.1", "--port", "0", "--dir", store], { env, cwd: tmp, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  server.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  server.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const url = await waitFor(
    "`labbook serve` to print its URL",
    async () => {
      if (server.exitCode !== null) throw new Error(`labbook serve exited (${server.exitCode}): ${out}`);
      return /serving .* at (http:\/\/\S+)/.exec(out)?.[1];
    },
    20000,
  );
  await waitFor("GET /health", async () => ((await fetch(`${url}/health`)).ok ? true : undefined), 10000);

  // The mlflow client's projects, in the background (its own venv: mlflow,
  // scikit-learn); it prints what it logged as its last line.
  const mlenv: NodeJS.ProcessEnv = { ...process.env, MLFLOW_TRACKING_URI: url, NO_COLOR: "1", MLFLOW_DISABLE_TELEMETRY: "true", DO_NOT_TRACK: "true" };
  delete mlenv.LABBOOK_DIR;
  const mlflowRuns = exec(mlflowPython, [join(here, "fixtures/mlflow_runs.py"), url], { env: mlenv, cwd: tmp });
  mlflowRuns.catch(() => undefined);

  // 450 small runs (paging) in the background while the demo trains; the
  // rejection is handled where it is awaited, and a failure elsewhere
  // stops the process with the rest.
  const bulk = exec(python, [join(here, "fixtures/bulk_runs.py"), "450"], { env, cwd: tmp });
  bulk.catch(() => undefined);

  // The demo: 3 learning rates × 2 widths, each wrapped by `labbook run` so
  // output, git state and the environment are captured.
  const spirals = join(root, "examples/spirals");
  for (const lr of ["0.03", "0.3", "1.0"]) {
    for (const hidden of ["8", "64"]) {
      const why = `Does width ${hidden} at lr ${lr} separate the spirals?`;
      await exec(bin, ["run", "--project", "spirals", "--group", `lr=${lr} hidden=${hidden}`, "--tag", "grid", "--why", why, "--", python, "train.py", "--lr", lr, "--hidden", hidden, "--seed", "0", "--why", why], { env, cwd: spirals });
    }
  }
  await exec(python, [join(here, "fixtures/long_run.py")], { env, cwd: tmp });
  await exec(python, [join(here, "fixtures/seed_runs.py")], { env, cwd: tmp });
  await exec(python, [join(here, "fixtures/sweep_runs.py")], { env, cwd: tmp });
  await exec(python, [join(here, "fixtures/nested_runs.py")], { env, cwd: tmp });
  // Its runs start outside git, in a folder holding the files they log:
  // without LABBOOK_SNAPSHOT=0 each would also keep those files as a code
  // snapshot (a `code` version it used), which is not what versions.spec.ts
  // is about (replay.spec.ts checks the snapshots).
  const artifactsOut = await exec(python, [join(here, "fixtures/artifact_runs.py")], { env: { ...env, LABBOOK_SNAPSHOT: "0" }, cwd: tmp });
  const artifacts = JSON.parse(artifactsOut.trim().split("\n").filter((l) => l.startsWith("{")).pop() ?? "null") as ArtifactsFixture | null;
  if (!artifacts) throw new Error(`fixtures/artifact_runs.py printed no summary:\n${artifactsOut}`);
  const code = await dirtyRepository(tmp, bin, python, env);
  const replay = await replayRuns(tmp, bin, python, env, url);
  const search = await searchRuns(tmp, bin, python, env, url);
  await bulk;
  const mlflowOut = await mlflowRuns;
  const mlflow = JSON.parse(mlflowOut.trim().split("\n").filter((l) => l.startsWith("{")).pop() ?? "null") as MlflowFixture | null;
  if (!mlflow) throw new Error(`fixtures/mlflow_runs.py printed no summary:\n${mlflowOut}`);

  // The live run keeps logging for the whole test session (the teardown
  // stops it; 900 s is only a bound).
  start(python, [join(here, "fixtures/live_run.py"), "--seconds", "900"], { env, cwd: tmp, stdio: "ignore" });

  await waitFor(
    "the live run's first points",
    async () => {
      const r = (await (await fetch(`${url}/api/v1/projects/spirals/runs?filter=${encodeURIComponent('name = "live-run"')}`)).json()) as { runs: { metrics: Record<string, unknown> }[] };
      return r.runs[0]?.metrics["live/value"] ? true : undefined;
    },
    20000,
  );
  const dirty = (await (await fetch(`${url}/api/v1/projects/code/runs?filter=${encodeURIComponent('name = "dirty-code"')}`)).json()) as { runs: { id: string }[] };
  code.run = dirty.runs[0]?.id ?? "";
  if (!code.run) throw new Error("the run in the dirty repository is not in the store");

  // The binary embeds web/dist when it is compiled: the tests use the
  // binary's own copy, so it must be the dist just built.
  const index = await fetch(`${url}/`);
  await index.arrayBuffer();
  const differs = await embeddedDiffers(url);
  const serveDist = process.env[SERVE_DIST] === "1";
  if (differs.length && !serveDist) {
    throw new Error(
      `the labbook binary embeds another dashboard than web/dist (${differs.join(", ")} differ): rebuild the binary: make build ` +
        `(or set ${SERVE_DIST}=1 to have the tests serve web/dist to the browser while iterating on web/)`,
    );
  }
  const assets = serveDist ? "dist" : "embedded";
  if (serveDist) {
    console.warn(`\n[e2e] ${SERVE_DIST}=1: serving ${process.env.LABBOOK_E2E_DIST_DIR} to the browser (the binary's copy ${differs.length ? "differs from" : "is"} web/dist); the API is the real server's\n`);
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
  process.env.LABBOOK_E2E_CODE = JSON.stringify(code);
  process.env.LABBOOK_E2E_MLFLOW = JSON.stringify(mlflow);
  process.env.LABBOOK_E2E_ARTIFACTS = JSON.stringify(artifacts);
  process.env.LABBOOK_E2E_REPLAY = JSON.stringify(replay);
  process.env.LABBOOK_E2E_SEARCH = JSON.stringify(search);
  mkdirSync(dirname(STATE_FILE), { recursive: true });
  writeFileSync(STATE_FILE, JSON.stringify({ url, store, assets, csp, setup_s: (Date.now() - t0) / 1000 }));
  console.log(`[e2e] store ${store} filled in ${((Date.now() - t0) / 1000).toFixed(1)} s; server ${url}`);

  return async () => {
    await stopAll();
    if (!process.env.LABBOOK_E2E_KEEP) rmSync(tmp, { recursive: true, force: true });
  };
}
