// Sweeps, studies and the morning report on the dashboard (issue 13),
// against the API and what the real CLI and package made in project
// "search" (global-setup.ts, searchRuns): a 3 × 2 grid sweep of
// fixtures/search_train.py run by `labbook sweep run`, a `labbook.study()`
// with the median pruner (fixtures/search_study.py) whose trials are
// complete or pruned, a queue whose first job failed and whose second
// waits, and the baseline run set by `labbook baseline set`.
import type { Page } from "@playwright/test";
import type { SearchFixture } from "./global-setup";
import { apiGet, expect, screenshots, serverUrl, shown, test } from "./helpers";

const fixture = (): SearchFixture => {
  const f = JSON.parse(process.env.LABBOOK_E2E_SEARCH ?? "null") as SearchFixture | null;
  if (!f) throw new Error("LABBOOK_E2E_SEARCH is not set: run through playwright (global-setup.ts makes the searches)");
  return f;
};

type Domain = { type: "float" | "int"; low: number; high: number; log: boolean } | { type: "categorical"; choices: unknown[] };
type Brief = {
  id: string;
  name: string;
  kind: "sweep" | "study";
  state: string;
  state_reason: string | null;
  method: string;
  metric: string;
  direction: string;
  trials: number;
  counts: Record<string, number>;
  best: { number: number; value: number; run_id: string; params: Record<string, unknown> } | null;
};
type Trial = { number: number; state: string; value: number | null; run_id: string | null; params: Record<string, unknown>; intermediate: [number, number | null][] };
type Detail = {
  study: Brief;
  params: Record<string, Domain | null>;
  trials: Trial[];
  trials_total: number;
  history: { number: number; value: number; best: number }[];
  importance: { name: string; importance: number }[];
  importance_method: string;
};
type RunBrief = { id: string; name: string; value: number | null; status: string };
type Group = { kind: string; title: string; id: string | null; best: RunBrief | null; baseline_value: number | null; delta: number | null; better_than_baseline: boolean | null; curve: number[]; counts: Record<string, number> };
type Report = { counts: Record<string, number>; groups: Group[]; failures: { run: RunBrief; last_lines: string[] }[]; queue_left: { number: number; what: string }[]; baseline: RunBrief | null };

const study = (id: string) => apiGet<Detail>(`/api/v1/studies/${id}`);

/** Console errors the page logs (a failed request among them). */
function consoleErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  return errors;
}

/** The data of the uPlot inside `selector`: its series' x and y. */
async function plotData(page: Page, selector: string): Promise<{ mode: number; data: (number | null)[][] | null; series: number }> {
  return page.locator(selector).first().evaluate((el) => {
    type U = { mode: number; data: unknown[]; series: unknown[] };
    const u = (el as HTMLElement & { __uplot?: U }).__uplot;
    if (!u) return { mode: 0, data: null, series: 0 };
    const data = u.mode === 2 ? [] : (u.data as ArrayLike<number | null>[]).map((a) => Array.from(a));
    return { mode: u.mode, data, series: u.series.length - 1 };
  });
}

/** Where a data point is drawn, in page pixels. */
async function pointAt(page: Page, selector: string, x: number, y: number): Promise<{ x: number; y: number }> {
  return page.locator(selector).first().evaluate(
    (el, [vx, vy]) => {
      type U = { over: HTMLElement; valToPos: (v: number, s: string) => number };
      const u = (el as HTMLElement & { __uplot?: U }).__uplot;
      if (!u) throw new Error("no uPlot here");
      const box = u.over.getBoundingClientRect();
      return { x: box.left + u.valToPos(vx, "x"), y: box.top + u.valToPos(vy, "y") };
    },
    [x, y] as const,
  );
}

test("the sweeps view lists the project's sweep and study with their kind, method, state, metric, trial counts and best value, each linking to its page", async ({ page }) => {
  const f = fixture();
  const errors = consoleErrors(page);
  const { studies } = await apiGet<{ studies: Brief[] }>(`/api/v1/projects/${f.project}/studies`);
  expect(studies.map((s) => s.id).sort()).toEqual([f.sweep, f.study].sort());

  await page.goto(`/p/${f.project}`);
  await page.locator(".nav-link", { hasText: "Sweeps" }).click();
  await expect(page).toHaveURL(`/p/${f.project}/sweeps`);
  await expect(page.locator(".nav-link.active")).toHaveText("Sweeps");
  await expect(page.getByTestId("sweep-count")).toHaveText("1 sweep · 1 study");
  const rows = page.getByTestId("sweeps").locator("tbody tr");
  await expect(rows).toHaveCount(2);
  // Newest first, as the API lists them.
  expect(await rows.evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.study))).toEqual(studies.map((s) => s.id));
  for (const s of studies) {
    const tr = page.locator(`tr[data-study="${s.id}"]`);
    await expect(tr.getByTestId("sweep-link")).toHaveText(s.name);
    await expect(tr.getByTestId("sweep-link")).toHaveAttribute("href", `/p/${f.project}/sweep/${s.id}`);
    await expect(tr.locator(".kind-badge")).toHaveText(s.kind);
    await expect(tr).toContainText(s.method);
    await expect(tr.locator(".pill")).toHaveAttribute("data-state", s.state);
    if (s.state_reason) await expect(tr.locator(".pill")).toHaveAttribute("title", s.state_reason);
    await expect(tr).toContainText(`${s.metric} ↓ minimize`);
    await expect(tr.locator(".counts-total")).toHaveText(String(s.trials));
    // One bar segment per state with trials, as wide as its share.
    const segs = await tr.locator(".counts-seg").evaluateAll((els) => els.map((e) => [(e as HTMLElement).dataset.state, Number((e as HTMLElement).dataset.n)]));
    expect(Object.fromEntries(segs)).toEqual(s.counts);
    expect(shown(await tr.getByTestId("best-value").innerText())).toBeCloseToSig(s.best?.value ?? NaN);
  }
  // The study has pruned trials, the grid none.
  const st = studies.find((s) => s.id === f.study);
  expect(st?.counts.pruned ?? 0).toBeGreaterThan(0);
  expect(st?.counts.complete ?? 0).toBeGreaterThan(0);
  expect(studies.find((s) => s.id === f.sweep)?.counts).toEqual({ complete: 6 });
  await screenshots(page, "sweeps");

  await page.locator(`tr[data-study="${f.sweep}"]`).getByTestId("sweep-link").click();
  await expect(page).toHaveURL(`/p/${f.project}/sweep/${f.sweep}`);
  await expect(page.getByTestId("sweep-name")).toHaveText("grid-lr-width");
  await expect(page.locator(".nav-link.active")).toHaveText("Sweeps");
  expect(errors, "console errors").toEqual([]);
});

test("a grid sweep's page: its header and best trial, the optimization history, the importance bars, a slice per parameter, each trial's curve and the trials table", async ({ page }) => {
  const f = fixture();
  const errors = consoleErrors(page);
  const d = await study(f.sweep);
  expect(d.trials).toHaveLength(6);
  expect(d.history).toHaveLength(6);
  const best = d.study.best;
  if (!best) throw new Error("the grid sweep has no best trial");

  await page.goto(`/p/${f.project}/sweep/${f.sweep}`);
  await expect(page.getByTestId("sweep-name")).toHaveText(d.study.name);
  await expect(page.locator(".sweep-head .kind-badge")).toHaveText("sweep");
  await expect(page.locator(".sweep-head .pill")).toHaveAttribute("data-state", "finished");
  await expect(page.getByTestId("sweep-why")).toHaveText("Which learning rate and width does the small model want?");
  await expect(page.getByTestId("state-reason")).toHaveText(d.study.state_reason ?? "");
  const bestCard = page.getByTestId("best-trial");
  expect(shown(await bestCard.getByTestId("best-value").innerText())).toBeCloseToSig(best.value);
  await expect(bestCard).toContainText(`trial #${best.number}`);
  await expect(bestCard.getByTestId("best-run")).toHaveAttribute("href", `/p/${f.project}/run/${best.run_id}`);
  for (const [k, v] of Object.entries(best.params)) await expect(bestCard.locator(".param-chip", { hasText: k })).toContainText(String(v));

  // (1) The history: a uPlot of each complete trial's value by number and
  // the best so far, the API's numbers exactly.
  const history = page.getByTestId("history-plot");
  await expect(history.locator("canvas")).toHaveCount(1);
  await expect(history).toHaveAttribute("data-points", String(d.history.length));
  const h = await plotData(page, '[data-testid="history-plot"]');
  expect(h.data).toEqual([d.history.map((x) => x.number), d.history.map((x) => x.value), d.history.map((x) => x.best)]);
  expect(shown(await page.locator("#history .card-right .num").innerText())).toBeCloseToSig(best.value);

  // (2) Importance: one bar per parameter, most important first, the method named.
  await expect(page.getByTestId("importance-method")).toHaveText(d.importance_method);
  const bars = page.getByTestId("importance").locator(".imp-row");
  await expect(bars).toHaveCount(d.importance.length);
  expect(await bars.evaluateAll((rs) => rs.map((r) => (r as HTMLElement).dataset.param))).toEqual(d.importance.map((i) => i.name));
  const widths = await bars.locator(".imp-bar").evaluateAll((bs) => bs.map((b) => b.getBoundingClientRect().width));
  expect(widths[0]).toBeGreaterThan(widths[1]);

  // (3) A slice per parameter: the grid's values are categories.
  const slices = page.getByTestId("slices").locator(".slice");
  await expect(slices).toHaveCount(Object.keys(d.params).length);
  for (const name of Object.keys(d.params)) {
    const plot = page.locator(`.slice[data-param="${name}"] [data-testid="slice-plot"]`);
    await expect(plot.locator("canvas")).toHaveCount(1);
    await expect(plot).toHaveAttribute("data-points", "6");
    await expect(plot).toHaveAttribute("data-scale", "categorical");
  }

  // (4) A sweep's trials report nothing of their own: their runs' loss curves.
  await expect(page.getByTestId("curves-plot")).toHaveAttribute("data-curves", "6");
  await expect(page.getByTestId("show-pruned")).toHaveCount(0);

  // (5) The trials: one row each, the best marked; sorting by the value
  // puts the best first.
  const rows = page.getByTestId("trials").locator("tbody tr");
  await expect(rows).toHaveCount(d.trials.length);
  await expect(page.locator(`tr[data-trial="${best.number}"]`)).toHaveClass(/best-row/);
  for (const t of d.trials) {
    const tr = page.locator(`tr[data-trial="${t.number}"]`);
    await expect(tr.locator(".pill")).toHaveAttribute("data-state", t.state);
    expect(shown(await tr.locator('[data-col="value"]').innerText().then((s) => s.replace("best", "")))).toBeCloseToSig(t.value ?? NaN);
    await expect(tr.locator(`a[href="/p/${f.project}/run/${t.run_id}"]`)).toHaveCount(1);
    for (const [k, v] of Object.entries(t.params)) await expect(tr.locator(`td[data-param="${k}"]`)).toHaveText(String(v));
  }
  await page.getByTestId("trials").getByRole("button", { name: "loss" }).click();
  await expect(page).toHaveURL(/tsort=value/);
  await expect(rows.first()).toHaveAttribute("data-trial", String(best.number));
  await screenshots(page, "sweep-grid");

  // The trials' runs in the parallel coordinates, picked by the sweep's tag.
  await page.getByTestId("link-parallel").click();
  await expect(page).toHaveURL(new RegExp(`/p/${f.project}/parallel\\?`));
  expect(new URL(page.url()).searchParams.get("filter")).toBe(`tags.labbook.sweep = "${f.sweep}"`);
  await expect(page.locator(".page-head")).toContainText("6 runs matching the filter");
  await page.goBack();
  await page.getByTestId("link-scatter").click();
  await expect(page.getByTestId("scatter")).toHaveAttribute("data-points", "6");
  expect(errors, "console errors").toEqual([]);
});

test("a study's page: the pruned trials' curves drawn muted beside the complete ones, a toggle that hides them; log, linear and categorical slices; hovering names a trial and a click opens its run", async ({ page }) => {
  const f = fixture();
  const errors = consoleErrors(page);
  const d = await study(f.study);
  const pruned = d.trials.filter((t) => t.state === "pruned");
  const complete = d.trials.filter((t) => t.state === "complete");
  expect(pruned.length).toBeGreaterThan(0);
  expect(d.params.lr).toMatchObject({ type: "float", log: true });
  expect(d.params.width).toMatchObject({ type: "int", log: false });
  expect(d.params.optimizer).toMatchObject({ type: "categorical" });

  await page.goto(`/p/${f.project}/sweep/${f.study}`);
  await expect(page.locator(".sweep-head .kind-badge")).toHaveText("study");
  await expect(page.locator(".trials-fact .counts-item[data-state='pruned']")).toContainText(`${pruned.length} pruned`);
  // The history holds the complete trials only.
  await expect(page.getByTestId("history-plot")).toHaveAttribute("data-points", String(complete.length));
  expect(d.importance.map((i) => i.name).sort()).toEqual(["lr", "optimizer", "width"]);
  await expect(page.getByTestId("importance").locator(".imp-row")).toHaveCount(3);

  // Slices: lr on a log axis (its domain is log), width linear, the optimizer's choices as categories.
  const scale = (p: string) => page.locator(`.slice[data-param="${p}"] [data-testid="slice-plot"]`);
  await expect(scale("lr")).toHaveAttribute("data-scale", "log");
  await expect(scale("width")).toHaveAttribute("data-scale", "linear");
  await expect(scale("optimizer")).toHaveAttribute("data-scale", "categorical");
  for (const p of ["lr", "width", "optimizer"]) await expect(scale(p)).toHaveAttribute("data-points", String(complete.length));
  const lrScale = await scale("lr").evaluate((el) => (el as HTMLElement & { __uplot?: { scales: { x: { distr: number } } } }).__uplot?.scales.x.distr);
  expect(lrScale).toBe(3);
  // Each dot where its trial's value puts it: lr as it is, a category at
  // its choice's index (spread by at most a quarter of the gap).
  const lrData = await plotData(page, '.slice[data-param="lr"] [data-testid="slice-plot"]');
  expect(lrData.data?.[0]).toEqual(complete.map((t) => t.params.lr as number).sort((a, b) => a - b));
  const optData = await plotData(page, '.slice[data-param="optimizer"] [data-testid="slice-plot"]');
  const choices = (d.params.optimizer as { choices: unknown[] }).choices;
  const xs = (optData.data?.[0] ?? []) as number[];
  expect(xs.every((x) => Math.abs(x - Math.round(x)) <= 0.25)).toBe(true);
  const byChoice = choices.map((c, i) => [xs.filter((x) => Math.round(x) === i).length, complete.filter((t) => t.params.optimizer === c).length]);
  for (const [drawn, want] of byChoice) expect(drawn).toBe(want);

  // Intermediate values: every trial's reports, the pruned ones among them,
  // in a muted color; the toggle hides them (and says so in the URL).
  const curves = page.getByTestId("curves-plot");
  await expect(curves).toHaveAttribute("data-curves", String(d.trials.filter((t) => t.intermediate.length).length));
  await expect(curves).toHaveAttribute("data-pruned", String(pruned.length));
  const strokes = await curves.evaluate((el) => {
    type U = { series: { label?: string; stroke?: unknown }[] };
    const u = (el as HTMLElement & { __uplot?: U }).__uplot;
    // uPlot keeps each stroke as a function of the plot and the series.
    return (u?.series ?? []).slice(1).map((s, i) => [String(s.label), typeof s.stroke === "function" ? String((s.stroke as (u: U, i: number) => string)(u as U, i + 1)) : String(s.stroke)]);
  });
  const strokeOf = new Map(strokes.map(([l, s]) => [l, s]));
  const mutedStroke = strokeOf.get(`#${pruned[0].number}`);
  const keptStroke = strokeOf.get(`#${complete.find((t) => t.number !== d.study.best?.number)?.number}`);
  expect(mutedStroke).toBeTruthy();
  expect(mutedStroke).not.toBe(keptStroke);
  for (const t of pruned) expect(strokeOf.get(`#${t.number}`)).toBe(mutedStroke);
  await screenshots(page, "sweep-study");

  await page.getByTestId("show-pruned").uncheck();
  await expect(page).toHaveURL(/pruned=0/);
  await expect(curves).toHaveAttribute("data-pruned", "0");
  await expect(curves).toHaveAttribute("data-curves", String(complete.length));
  await page.getByTestId("show-pruned").check();
  await expect(curves).toHaveAttribute("data-pruned", String(pruned.length));

  // Hovering the best point of the history names its trial; a click opens its run.
  const best = d.history.reduce((a, b) => (b.value < a.value ? b : a));
  await page.getByTestId("history-plot").scrollIntoViewIfNeeded();
  const at = await pointAt(page, '[data-testid="history-plot"]', best.number, best.value);
  await page.mouse.move(at.x - 40, at.y - 40);
  await page.mouse.move(at.x, at.y, { steps: 4 });
  await expect(page.locator("#history").getByTestId("readout")).toContainText(`#${best.number}`);
  await page.mouse.click(at.x, at.y);
  const run = d.trials.find((t) => t.number === best.number)?.run_id;
  await expect(page).toHaveURL(`/p/${f.project}/run/${run}`);
  expect(errors, "console errors").toEqual([]);
});

test("the morning report: the window's counts, a card per group with its best run against the baseline (better or worse), the failing job with its last line, and the queue", async ({ page }) => {
  const f = fixture();
  const errors = consoleErrors(page);
  const r = await apiGet<Report>(`/api/v1/projects/${f.project}/report`);
  expect(r.baseline?.id).toBe(f.baseline);
  const sweepGroup = r.groups.find((g) => g.id === f.sweep);
  const studyGroup = r.groups.find((g) => g.id === f.study);
  expect(sweepGroup?.better_than_baseline).toBe(true);
  expect(studyGroup?.better_than_baseline).toBe(false);

  await page.goto(`/p/${f.project}`);
  await page.locator(".nav-link", { hasText: "Report" }).click();
  await expect(page).toHaveURL(`/p/${f.project}/report`);
  await expect(page.locator('.seg-btn[data-preset="24h"]')).toHaveAttribute("aria-pressed", "true");
  for (const [k, n] of Object.entries(r.counts)) await expect(page.locator(`.sum-chip[data-count="${k}"]`)).toHaveAttribute("data-n", String(n));
  await expect(page.locator('.sum-chip[data-count="queue_left"] .sum-n')).toHaveText(String(r.queue_left.length));
  await expect(page.getByTestId("baseline")).toContainText("baseline-v1");

  const groups = page.getByTestId("group");
  await expect(groups).toHaveCount(r.groups.length);
  for (const [g, better] of [
    [sweepGroup, "true"],
    [studyGroup, "false"],
  ] as const) {
    if (!g?.best || g.baseline_value === null) throw new Error(`group ${g?.title} has no best run or baseline value`);
    const card = page.locator(`[data-testid="group"][data-group="${g.title}"]`);
    await expect(card.getByTestId("group-title")).toHaveAttribute("href", `/p/${f.project}/sweep/${g.id}`);
    await expect(card.locator(".kind-badge")).toHaveText(g.kind);
    expect(shown(await card.getByTestId("best-value").innerText())).toBeCloseToSig(g.best.value ?? NaN);
    await expect(card.getByTestId("best-run")).toHaveAttribute("href", `/p/${f.project}/run/${g.best.id}`);
    const vs = card.getByTestId("vs-baseline");
    await expect(vs).toHaveAttribute("data-better", better);
    await expect(vs).toContainText(better === "true" ? "better than the baseline" : "worse than the baseline");
    expect(shown((await vs.locator(".vs-delta").innerText()).split(" ")[0])).toBeCloseToSig(g.delta ?? NaN);
    // Good in green, bad in red.
    const color = await vs.locator(".vs-delta").evaluate((e) => getComputedStyle(e).color);
    const want = await page.evaluate((v) => {
      const el = document.createElement("span");
      el.style.color = `var(${v})`;
      document.body.append(el);
      const c = getComputedStyle(el).color;
      el.remove();
      return c;
    }, better === "true" ? "--green" : "--red");
    expect(color).toBe(want);
    // The sparkline of the best run's curve.
    await expect(card.getByTestId("sparkline").locator("canvas")).toHaveCount(1);
    await expect(card.getByTestId("sparkline")).toHaveAttribute("data-points", String(g.curve.length));
  }
  // The baseline's own group says it is the baseline.
  await expect(page.locator('[data-testid="vs-baseline"][data-better="baseline"]')).toHaveCount(1);

  // The failing job: its run and its last line.
  const failure = page.getByTestId("failures").locator(`.failure[data-run="${f.failedRun}"]`);
  await expect(failure.getByTestId("last-lines")).toContainText(f.failedLine);
  await expect(failure.locator(".pill")).toHaveAttribute("data-status", "failed");
  expect(r.failures.find((x) => x.run.id === f.failedRun)?.last_lines).toContain(f.failedLine);

  // The queue: the failed job with its run, the waiting one first.
  const jobs = page.getByTestId("queue").locator("tbody tr");
  await expect(jobs).toHaveCount(2);
  await expect(jobs.first()).toHaveAttribute("data-state", "waiting");
  await expect(jobs.first()).toContainText(f.waiting);
  await expect(page.locator('tr[data-state="failed"]')).toContainText("Does the new data loader survive shard 7?");
  await expect(page.locator('tr[data-state="failed"]').locator(`a[href="/p/${f.project}/run/${f.failedRun}"]`)).toHaveCount(1);
  await screenshots(page, "report");

  // A preset asks for its window; a window with nothing in it says so.
  const asked = page.waitForRequest((q) => q.url().includes(`/api/v1/projects/${f.project}/report`) && q.url().includes("since="));
  await page.locator('.seg-btn[data-preset="7d"]').click();
  await expect(page).toHaveURL(/w=7d/);
  const since = Number(new URL((await asked).url()).searchParams.get("since"));
  expect(Math.abs(Date.now() - 7 * 86_400_000 - since)).toBeLessThan(120_000);
  await page.goto(`/p/${f.project}/report?since=${Date.UTC(2001, 0, 1)}&until=${Date.UTC(2001, 0, 2)}`);
  await expect(page.locator(".empty-title")).toHaveText("Nothing ran in this window");
  await expect(page.locator('.seg-btn[aria-pressed="true"]')).toHaveCount(0);
  expect(errors, "console errors").toEqual([]);
});

test("hostile ids and parameters get clean JSON errors, and the pages say what is missing", async ({ page }) => {
  const url = serverUrl();
  const get = async (path: string) => {
    const res = await fetch(url + path);
    const text = await res.text();
    type Body = { error?: { code?: string; field?: string; message?: string } };
    let body: Body | null;
    try {
      body = JSON.parse(text) as Body;
    } catch {
      body = null;
    }
    return { status: res.status, type: res.headers.get("content-type") ?? "", body, size: text.length };
  };
  for (const path of ["/api/v1/studies/%2e%2e%2f", `/api/v1/studies/${"a".repeat(10_240)}`, "/api/v1/studies/..%2f..%2fetc%2fpasswd", "/api/v1/studies/%00"]) {
    const r = await get(path);
    expect(r.status, path.slice(0, 60)).toBeGreaterThanOrEqual(400);
    expect(r.status, path.slice(0, 60)).toBeLessThan(500);
    expect(r.type, path.slice(0, 60)).toContain("application/json");
    expect(typeof r.body?.error?.code, path.slice(0, 60)).toBe("string");
  }
  const bad = await get("/api/v1/projects/x/report?since=abc");
  expect(bad.status).toBe(400);
  expect(bad.body?.error?.field).toBe("since");
  const reversed = await get("/api/v1/projects/x/report?since=2000&until=1000");
  expect(reversed.status).toBe(400);
  expect(reversed.body?.error?.field).toBe("since");

  // The pages: a search that is not there, and a window the server refuses.
  await page.goto("/p/search/sweep/%2e%2e%2f");
  await expect(page.locator(".empty-title")).toHaveText("No sweep or study ../");
  await page.getByTestId("back-to-sweeps").click();
  await expect(page).toHaveURL("/p/search/sweeps");
  await page.goto("/p/search/report?since=5000&until=1000");
  await expect(page.locator(".error-box")).toContainText("since must be before until");
  await page.goto("/p/no-such-project/sweeps");
  await expect(page.locator(".empty-title")).toHaveText("No sweeps or studies yet");
});
