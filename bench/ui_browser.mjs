// `make bench`'s browser half: time until the runs table of 10,000 runs is
// interactive, and until a chart of 100 runs × 100k steps is drawn, in
// headless Chromium against a running `labbook` server.
// Also: the runs page of a 5,000-run nested project, and the preview of a
// 100 MB CSV artifact showing its first rows.
// Usage: node bench/ui_browser.mjs BASE_URL CURVE_RUN_IDS TABLE_RUN_ID
// Prints JSON lines for bench/report.py.
// bench/scale_bench.py points the same figures at its own stores:
// LABBOOK_BENCH_RUNS_PAGE (the runs page's path), LABBOOK_BENCH_CHART_PROJECT
// and LABBOOK_BENCH_CHART_METRIC (the chart's project and metric).
import { chromium } from "../web/node_modules/playwright-core/index.mjs";

const [base, curveIds, tableRun] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
});

async function timed(reps, fn) {
  const times = [];
  for (let i = 0; i < reps; i++) {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const page = await context.newPage();
    times.push(await fn(page));
    await context.close();
  }
  if (process.env.LABBOOK_BENCH_DIAG) console.error(JSON.stringify(times.map(Math.round)));
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)], min: times[0], max: times[times.length - 1] };
}

// LABBOOK_BENCH_REPS=N: N loads of each page instead of the default.
async function measure(figure, reps, fn) {
  if (!wanted(figure)) return;
  const n = Number(process.env.LABBOOK_BENCH_REPS) || reps;
  console.log(JSON.stringify({ figure, unit: "ms", ...(await timed(n, fn)) }));
}

// LABBOOK_BENCH_ONLY=a,b: only the figures whose names contain one of these.
const only = process.env.LABBOOK_BENCH_ONLY?.split(",");
const wanted = (figure) => !only || only.some((o) => figure.includes(o));

// Interactive: the first rows of the sorted table are on screen and a row's
// checkbox takes a click.
await measure("ui_runs_interactive_10k", 5, async (page) => {
  const start = performance.now();
  await page.goto(`${base}${process.env.LABBOOK_BENCH_RUNS_PAGE ?? "/p/big?sort=-metrics.metric_3"}`);
  const row = page.locator(".tr[data-run]").first();
  await row.waitFor({ state: "visible" });
  await row.locator("input[type=checkbox]").click();
  await page.locator(".tr.selected").first().waitFor();
  return performance.now() - start;
});

// The same for 50 GridSearch parents with 99 children each: the tree's
// first rows are on screen and take a click.
await measure("ui_runs_interactive_nested_5k", 5, async (page) => {
  const start = performance.now();
  await page.goto(`${base}/p/grid`);
  const row = page.locator(".tr[data-run]").first();
  await row.waitFor({ state: "visible" });
  await row.locator("input[type=checkbox]").click();
  await page.locator(".tr.selected").first().waitFor();
  const elapsed = performance.now() - start;
  if (process.env.LABBOOK_BENCH_DIAG) {
    const entries = await page.evaluate(() =>
      performance.getEntriesByType("resource").map((e) => ({ name: e.name.split("/").slice(-2).join("/").slice(0, 60), start: Math.round(e.startTime), end: Math.round(e.responseEnd), size: e.transferSize })),
    );
    console.error(JSON.stringify({ elapsed: Math.round(elapsed), entries }));
  }
  return elapsed;
});

// A 100 MB CSV's preview: from a click on the file in the artifacts
// browser until its first rows are in the table; and the same opened from
// a link, page load included.
await measure("ui_preview_csv_100mb", 5, async (page) => {
  await page.goto(`${base}/p/tables/run/${tableRun}?tab=artifacts&path=tables`);
  const file = page.locator('[data-testid=artifact-tree] .tree-row[data-path="tables/metrics.csv"]');
  await file.waitFor({ state: "visible" });
  const start = performance.now();
  await file.click();
  await page.locator("[data-testid=preview-table] tbody tr").first().waitFor({ state: "visible" });
  return performance.now() - start;
});
await measure("ui_preview_csv_100mb_page", 5, async (page) => {
  const start = performance.now();
  await page.goto(`${base}/p/tables/run/${tableRun}?tab=artifacts&path=tables%2Fmetrics.csv`);
  await page.locator("[data-testid=preview-table] tbody tr").first().waitFor({ state: "visible" });
  return performance.now() - start;
});

// Drawn: the panel received every run's downsampled curve and uPlot drew it.
const ids = curveIds.split(",");
const chartProject = process.env.LABBOOK_BENCH_CHART_PROJECT ?? "curves";
const chartMetric = process.env.LABBOOK_BENCH_CHART_METRIC ?? "loss";
await measure("ui_chart_drawn_100x100k", 5, async (page) => {
  const start = performance.now();
  await page.goto(`${base}/p/${chartProject}/charts?runs=${ids.join(",")}`);
  // Checked in the page every frame (one protocol call, not one per check:
  // polling from here costs the page's CPU too), then one frame more so the
  // drawing is on screen.
  await page.evaluate(
    ([n, metric]) =>
      new Promise((resolve, reject) => {
        const deadline = performance.now() + 30_000;
        const check = () => {
          const c = window.__labbookCharts?.[metric];
          if (c && Object.keys(c.perRun).length === n && c.points > 0) requestAnimationFrame(() => resolve());
          else if (performance.now() > deadline) reject(new Error("the chart was not drawn in 30 s"));
          else requestAnimationFrame(check);
        };
        check();
      }),
    [ids.length, chartMetric],
  );
  const elapsed = performance.now() - start;
  if (process.env.LABBOOK_BENCH_DIAG) {
    const entries = await page.evaluate(() =>
      performance.getEntriesByType("resource").map((e) => ({ name: e.name.split("?")[0].split("/").slice(-2).join("/"), start: Math.round(e.startTime), end: Math.round(e.responseEnd), size: e.transferSize })),
    );
    const requests = await page.evaluate(() => window.__labbookCharts?.loss?.requests);
    console.error(JSON.stringify({ elapsed: Math.round(elapsed), requests, entries }));
  }
  return elapsed;
});

// LABBOOK_BENCH_PROFILE=FILE: one more chart load under Chromium's CPU
// profiler; FILE gets the .cpuprofile, stderr the top functions by self time.
if (process.env.LABBOOK_BENCH_PROFILE) {
  const { writeFileSync } = await import("node:fs");
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("Profiler.enable");
  await cdp.send("Profiler.setSamplingInterval", { interval: 200 });
  await cdp.send("Profiler.start");
  await page.goto(`${base}/p/curves/charts?runs=${ids.join(",")}`);
  await page.waitForFunction((n) => Object.keys(window.__labbookCharts?.loss?.perRun ?? {}).length === n, ids.length, { timeout: 30_000 });
  const { profile } = await cdp.send("Profiler.stop");
  writeFileSync(process.env.LABBOOK_BENCH_PROFILE, JSON.stringify(profile));
  const self = new Map();
  const dt = profile.timeDeltas;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  profile.samples.forEach((id, i) => {
    const f = byId.get(id).callFrame;
    const name = `${f.functionName || "(anonymous)"} ${f.url.split("/").pop()}:${f.lineNumber + 1}`;
    self.set(name, (self.get(name) ?? 0) + (dt[i] ?? 0) / 1000);
  });
  const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25);
  for (const [name, ms] of top) console.error(`${ms.toFixed(1).padStart(8)} ms  ${name}`);
  await context.close();
}
if (process.env.LABBOOK_BENCH_TRACE) {
  const { readFileSync } = await import("node:fs");
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await context.newPage();
  await browser.startTracing(page, { path: process.env.LABBOOK_BENCH_TRACE, categories: ["devtools.timeline", "disabled-by-default-devtools.timeline", "cc", "viz", "gpu", "blink", "v8", "toplevel", "skia", "disabled-by-default-skia"] });
  const t0 = Date.now();
  await page.goto(`${base}/p/curves/charts?runs=${ids.join(",")}`);
  await page.waitForFunction((n) => Object.keys(window.__labbookCharts?.loss?.perRun ?? {}).length === n, ids.length, { timeout: 30_000, polling: 16 });
  const seen = Date.now() - t0;
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
  console.error(JSON.stringify({ seen, raf: Date.now() - t0 }));
  await browser.stopTracing();
  await context.close();
}
await browser.close();
