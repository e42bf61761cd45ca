// W10 (issue 5): time from navigation start until the first chart of N runs of
// one metric is drawn with every run's curve in it, in headless Chromium:
// labbook's dashboard against MLflow's UI, on the same data (seeded by
// bench/ui_peers_seed.py; bench/ui_peers.sh starts the servers and runs this).
//
//   node bench/ui_peers.mjs --labbook URL --labbook-ids labbook.json \
//     --mlflow URL --mlflow-ids mlflow.json --runs 100 --steps 100000 \
//     [--reps 3] [--warmup 1] [--cap 180] [--budget S] [--mlflow-store analyzed|as-is]
//     [--tools labbook,mlflow] [--out bench/out/ui_peers.jsonl]
//
// Each repetition is a fresh browser context. The time is taken in the page
// (performance.now(), whose origin is the navigation start): a checker that an
// init script installs runs once per animation frame and notes the frame after
// the one in which the chart first holds all N curves.
//   labbook: /p/PROJECT/charts?runs=ID,... (the runs selected, as
//     bench/ui_browser.mjs); drawn when the "loss" panel's uPlot got a non-empty
//     curve for every run (window.__labbookCharts, the panel's debug record).
//   MLflow: the experiment page's Chart view, #/experiments/ID/runs?compareRunsMode=CHART,
//     with the runs table set to "Show all runs" (stored in localStorage as the UI
//     stores it; the default shows the first 10) and the assistant panel closed;
//     drawn when the "loss" line chart's Plotly figure has traces with points
//     for every run, and a non-empty SVG line path for each of those traces.
// One untimed warm-up load per tool comes first (--warmup; its time is in the
// note). A load that does not finish within --cap seconds counts as the cap and
// ends that tool's loads: its figure is then a lower bound (the note says so,
// and the row has "lower_bound": true). --budget S (seconds from this script's
// start) stops starting timed loads that would end past it, once a tool has one.
// --mlflow-store only words the note: ui_peers.sh decides whether MLflow's
// store was ANALYZEd. UI_PEERS_SHOT=PREFIX saves a screenshot of each load's
// end as PREFIX-TOOL.png; UI_PEERS_DIAG=1 logs the Plotly traces found.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { chromium } from "../web/node_modules/playwright-core/index.mjs";

function parseArgs(argv) {
  const args = { reps: 3, warmup: 1, cap: 180, budget: 1e9, mlflowStore: "analyzed", tools: "labbook,mlflow", out: "bench/out/ui_peers.jsonl" };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "").replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    args[key] = argv[i + 1];
  }
  for (const k of ["reps", "warmup", "cap", "budget", "runs", "steps"]) args[k] = Number(args[k]);
  args.tools = String(args.tools).split(",");
  return args;
}

const args = parseArgs(process.argv.slice(2));
const METRIC = "loss";
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
});

function log(message) {
  console.error(`[${new Date().toTimeString().slice(0, 8)}] ui_peers.mjs: ${message}`);
}

// Installed in every document before its scripts: calls `check` once per
// frame; when it first holds, records performance.now() at the next frame
// (that frame's paint includes the chart) in window.__w10.
function installChecker({ n, tool, metric }) {
  const checks = {
    labbook() {
      const c = window.__labbookCharts?.[metric];
      if (!c || c.points <= 0) return null;
      const runs = Object.values(c.perRun).filter((k) => k > 0).length;
      return runs === n ? { runs, points: c.points, fetches: c.fetches, requests: c.requests.length } : null;
    },
    mlflow() {
      for (const gd of document.querySelectorAll(".js-plotly-plot")) {
        if (!Array.isArray(gd.data) || !gd.data.length) continue;
        // Plotly's traces carry the run's uuid; MLflow draws two per run.
        const perRun = new Map();
        let traces = 0;
        for (const t of gd.data) {
          const len = t.x?.length ?? 0;
          if (t.type !== "scatter" || len === 0) continue;
          traces += 1;
          perRun.set(t.uuid ?? t.name, Math.max(perRun.get(t.uuid ?? t.name) ?? 0, len));
        }
        if (perRun.size < n) continue;
        // Every trace with points has its SVG line drawn.
        const paths = [...gd.querySelectorAll("g.trace.scatter path.js-line")].filter((p) => (p.getAttribute("d") ?? "").length > 1).length;
        if (paths >= traces) {
          return { runs: perRun.size, traces, paths, points: [...perRun.values()].reduce((s, k) => s + k, 0) };
        }
      }
      return null;
    },
  };
  const check = checks[tool];
  // When the chart's data request went out and its response ended.
  const endpoint = { labbook: "/api/v1/series", mlflow: "/metrics/get-history" }[tool];
  const fetchTimes = () => {
    const entries = performance.getEntriesByType("resource").filter((e) => e.name.includes(endpoint));
    if (!entries.length) return {};
    return { fetchStart: Math.round(Math.min(...entries.map((e) => e.startTime))), fetchEnd: Math.round(Math.max(...entries.map((e) => e.responseEnd))) };
  };
  let seen = null;
  const frame = () => {
    if (seen) {
      window.__w10 = { ms: performance.now(), ...seen, ...fetchTimes() };
      return;
    }
    try {
      seen = check();
    } catch {
      seen = null;
    }
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
}

// What the page fetched from the chart endpoints: requests, bytes, points.
// The bodies are read (over the DevTools protocol, a copy of each through
// the browser) only by `tally`, after the timed load, so that copying does
// not share the 2 cores with the page being timed.
function watchNetwork(page, pattern, countPoints) {
  const seen = [];
  page.on("response", (response) => {
    if (pattern.test(response.url())) seen.push(response);
  });
  return {
    async tally() {
      const stats = { requests: seen.length, bytes: 0, points: 0, failed: 0 };
      for (const response of seen) {
        try {
          // A load cut off at --cap may leave an answer unfinished: not waited for.
          const body = await Promise.race([response.body(), new Promise((_, reject) => setTimeout(() => reject(new Error("unfinished")), 10_000))]);
          stats.bytes += body.length;
          stats.points += countPoints(body);
        } catch {
          stats.failed += 1;
        }
      }
      return stats;
    },
  };
}

const tools = {
  labbook: {
    ids: () => JSON.parse(readFileSync(args.labbookIds, "utf8")),
    url: (seed) => `${args.labbook}/p/${seed.project}/charts?runs=${seed.run_ids.join(",")}`,
    async prepare() {},
    network: (page) =>
      watchNetwork(page, /\/api\/v1\/series\b/, (body) => {
        // The dashboard asks for binary columns (docs/API.md): "LBS1", a u32
        // header length, a JSON header naming each curve's n. JSON answers
        // (format absent) count their steps.
        try {
          if (body.subarray(0, 4).toString("latin1") === "LBS1") {
            const head = JSON.parse(body.subarray(8, 8 + body.readUInt32LE(4)).toString("utf8"));
            return (head.series ?? []).reduce((sum, c) => sum + (c.n ?? 0), 0);
          }
          return (JSON.parse(body.toString("utf8")).series ?? []).reduce((sum, c) => sum + (c.steps?.length ?? 0), 0);
        } catch {
          return 0;
        }
      }),
  },
  mlflow: {
    ids: () => JSON.parse(readFileSync(args.mlflowIds, "utf8")),
    url: (seed) => `${args.mlflow}/#/experiments/${seed.experiment_id}/runs?compareRunsMode=CHART`,
    async prepare(context, seed) {
      // What a user who earlier picked "Show all runs" in the runs table's
      // visibility menu and closed the assistant panel has in localStorage.
      const key = `MLflowLocalStorage-1.1-ExperimentPage-${JSON.stringify([String(seed.experiment_id)])}-ReactComponentState`;
      const state = {
        searchFilter: "",
        orderByKey: "attributes.start_time",
        orderByAsc: false,
        startTime: "ALL",
        lifecycleFilter: "Active",
        datasetsFilter: [],
        modelVersionFilter: "All Runs",
        selectedColumns: ["attributes.`Source`", "attributes.`Models`", "attributes.`Dataset`"],
        columnOrder: [],
        columnWidths: {},
        runsExpanded: {},
        runsPinned: [],
        runsHidden: [],
        runsVisibilityMap: {},
        runsHiddenMode: "SHOWALL",
        viewMaximized: false,
        runListHidden: false,
        isAccordionReordered: false,
        useGroupedValuesInCharts: true,
        hideEmptyCharts: true,
        groupBy: null,
        groupsExpanded: {},
        autoRefreshEnabled: false,
        globalLineChartConfig: { xAxisKey: "step", lineSmoothness: 0, selectedXAxisMetricKey: "" },
      };
      await context.addInitScript(
        ([k, v]) => {
          if (sessionStorage.getItem("__w10_seeded")) return;
          sessionStorage.setItem("__w10_seeded", "1");
          localStorage.setItem(k, v);
          localStorage.setItem("mlflow.assistant.fab.autoOpenedOnFirstLoad_v1", "true");
          localStorage.setItem("mlflow.assistant.panelOpen_v1", "false");
        },
        [key, JSON.stringify(state)],
      );
    },
    network: (page) =>
      watchNetwork(page, /\/ajax-api\/2\.0\/mlflow\/metrics\/get-history/, (body) => {
        try {
          return (JSON.parse(body.toString("utf8")).metrics ?? []).length;
        } catch {
          return 0;
        }
      }),
  },
};

async function measureOnce(name, seed) {
  const tool = tools[name];
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  try {
    await tool.prepare(context, seed);
    await context.addInitScript(installChecker, { n: seed.run_ids.length, tool: name, metric: METRIC });
    const page = await context.newPage();
    const net = tool.network(page);
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e).slice(0, 200)));
    await page.goto(tool.url(seed), { waitUntil: "commit" });
    // Waited for in the page's own world, as bench/ui_browser.mjs does:
    // waitForFunction first injects Playwright's own script into the page
    // being timed. With the bodies read during the load too, the harness
    // added 20–30 ms to labbook's ~380 ms (measured A/B, 7 loads each, twice).
    const done = await page.evaluate(
      (cap) =>
        new Promise((resolve) => {
          const until = performance.now() + cap;
          const poll = () => {
            if (window.__w10) resolve(window.__w10);
            else if (performance.now() > until) resolve(null);
            else setTimeout(poll, 100);
          };
          poll();
        }),
      args.cap * 1000,
    );
    const fetched = await net.tally();
    if (process.env.UI_PEERS_SHOT) await page.screenshot({ path: `${process.env.UI_PEERS_SHOT}-${name}.png` });
    if (process.env.UI_PEERS_DIAG) {
      const diag = await page.evaluate(() =>
        [...document.querySelectorAll(".js-plotly-plot")].map((gd) => ({
          traces: (gd.data ?? []).map((t) => ({ type: t.type, name: t.name, uuid: t.uuid, n: t.x?.length, mode: t.mode, visible: t.visible })).slice(0, 6),
          count: gd.data?.length,
        })),
      );
      log(`${name} diag: ${JSON.stringify(diag)} errors: ${JSON.stringify(errors)}`);
    }
    return { ms: done ? done.ms : null, drawn: done, net: fetched, errors };
  } finally {
    await context.close();
  }
}

function round(x) {
  return Math.round(x * 10) / 10;
}

function median(xs) {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : null;
}

const started = performance.now();
const elapsedS = () => (performance.now() - started) / 1000;

async function measure(name) {
  const seed = tools[name].ids();
  const times = [];
  const warmups = [];
  const drawn = [];
  let last = null;
  let capped = false;
  let cut = false;
  // The loads of this tool: --warmup untimed ones (the server's first
  // requests, per worker for MLflow, and the browser's first compile of the
  // page's scripts are not the figure), then --reps timed ones. A timed load
  // is not started when the previous one says it would end past --budget.
  for (let i = 0; i < args.warmup + args.reps && !capped; i++) {
    const warm = i < args.warmup;
    const label = warm ? `warm-up ${i + 1}` : `rep ${i - args.warmup + 1}`;
    if (!warm && times.length && last?.ms && elapsedS() + last.ms / 1000 > args.budget) {
      log(`${name}: ${label} skipped: it would end past the ${args.budget} s budget`);
      cut = true;
      break;
    }
    const r = await measureOnce(name, seed);
    last = r;
    if (r.ms === null) {
      log(`${name}: ${label} not drawn within ${args.cap} s (fetched ${JSON.stringify(r.net)})`);
      times.push(args.cap * 1000);
      capped = true;
    } else if (warm) {
      log(`${name}: ${label}: ${round(r.ms)} ms`);
      warmups.push(r.ms);
    } else {
      log(`${name}: ${label}: ${round(r.ms)} ms ${JSON.stringify(r.drawn)} fetched ${JSON.stringify(r.net)}`);
      times.push(r.ms);
      drawn.push(r.drawn);
    }
  }
  const sorted = [...times].sort((a, b) => a - b);
  const n = seed.run_ids.length;
  const size = `${n} runs x ${args.steps} steps of "${METRIC}"`;
  const net = last.net;
  const fetched = `${net.requests} request(s), ${net.points} points, ${Math.round(net.bytes / 1024)} KiB`;
  const points = last.drawn?.points ?? "?";
  const fetchStart = median(drawn.map((d) => d.fetchStart).filter((x) => x !== undefined));
  const fetchEnd = median(drawn.map((d) => d.fetchEnd).filter((x) => x !== undefined));
  const timing = fetchEnd !== null ? `; its data request went out at ${fetchStart} ms and was answered at ${fetchEnd} ms (medians)` : "";
  const parts = [];
  if (name === "labbook") {
    parts.push(
      `${size}, seeded through the Python SDK (log_series)`,
      `labbook ui, /p/${seed.project}/charts?runs= the ${n} runs (as bench/ui_browser.mjs)`,
      `drawn = the uPlot panel holds all ${n} curves (${points} points, min/max-downsampled to the buckets the panel asks for: bucketsFor in web/src/chartdata.ts), at the next frame`,
      `fetched /api/v1/series: ${fetched}${timing}`,
    );
  } else {
    const stats =
      args.mlflowStore === "as-is"
        ? "store left as MLflow leaves it (no ANALYZE)"
        : "then ANALYZE on the store (MLflow never runs it; without statistics SQLite's planner scans the whole metrics primary-key index once per run, which is much slower: ui_peers.sh --mlflow-as-is measures that)";
    parts.push(
      `${size}, MLflow seeded by SQL: experiment and runs through MlflowClient against mlflow server, the points bulk-inserted into metrics and latest_metrics of its SQLite store run after run, ${stats}`,
      `mlflow server (SQLite, default workers), experiment page Chart view (#/experiments/ID/runs?compareRunsMode=CHART) with "Show all runs" and the assistant panel closed, set in localStorage`,
      `drawn = the Plotly "${METRIC}" line chart has traces with points for every run and a non-empty SVG line path for each (${points} points: get-history-bulk-interval samples 320 per run), at the next frame`,
      `fetched get-history-bulk-interval: ${fetched}${timing}`,
    );
  }
  if (warmups.length) parts.push(`after ${warmups.length} untimed warm-up load(s): ${warmups.map((t) => `${Math.round(t)} ms`).join(", ")}`);
  if (capped) parts.push(`NOT drawn within the ${args.cap} s cap: the figure is a lower bound`);
  if (cut) parts.push(`only ${times.length} of ${args.reps} timed loads: the time budget (--budget ${args.budget} s) ran out`);
  if (last.errors.length) parts.push(`page errors: ${last.errors.slice(0, 2).join(" | ")}`);
  return {
    workload: "W10",
    figure: `chart_${n}x${args.steps % 1000 === 0 ? `${args.steps / 1000}k` : args.steps}`,
    tool: name,
    unit: "ms",
    median: round(median(times)),
    min: round(sorted[0]),
    max: round(sorted[sorted.length - 1]),
    n: times.length,
    lower_bound: capped,
    note: parts.join("; "),
  };
}

try {
  const rows = [];
  for (const name of args.tools) {
    log(`measuring ${name} (${args.warmup} warm-up + ${args.reps} timed loads, cap ${args.cap} s each)`);
    rows.push(await measure(name));
  }
  mkdirSync(dirname(args.out), { recursive: true });
  const lines = rows.map((row) => JSON.stringify(row));
  for (const line of lines) console.log(line);
  writeFileSync(args.out, lines.map((line) => `${line}\n`).join(""));
} finally {
  await browser.close();
}
