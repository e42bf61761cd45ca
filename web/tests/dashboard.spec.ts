// The dashboard end to end, against the real server and real runs (see
// global-setup.ts). Every check compares what the page shows with what the
// API returns.
import type { Page } from "@playwright/test";
import type { ApiRun } from "./helpers";
import { apiGet, chartDebug, coloredPixels, expect, runByName, runs, screenshots, tableIds, test } from "./helpers";

async function waitForPoints(page: Page, metric: string, min = 1) {
  await expect.poll(async () => (await chartDebug(page, metric))?.points ?? 0, { message: `points drawn in ${metric}` }).toBeGreaterThanOrEqual(min);
}

test("projects page lists the projects with the API's counts; the theme is remembered", async ({ page }) => {
  const { projects } = await apiGet<{ projects: { name: string; runs: number; running: number }[] }>("/api/v1/projects");
  await page.goto("/");
  for (const p of projects) {
    const card = page.locator(`.project-card[data-project="${p.name}"]`);
    await expect(card).toBeVisible();
    await expect(card.locator(".stat").first()).toHaveText(p.runs.toLocaleString("en-US"));
  }
  const spirals = projects.find((p) => p.name === "spirals");
  expect(spirals?.running).toBeGreaterThanOrEqual(1); // the live run
  await screenshots(page, "projects");

  // The theme toggle persists across reloads (the only state outside the URL).
  const before = await page.evaluate(() => document.documentElement.dataset.theme);
  await page.getByTestId("theme-toggle").click();
  const after = before === "dark" ? "light" : "dark";
  await expect(page.locator("html")).toHaveAttribute("data-theme", after);
  await page.reload();
  await expect(page.locator("html")).toHaveAttribute("data-theme", after);

  await page.locator('.project-card[data-project="spirals"]').click();
  await expect(page).toHaveURL(/\/p\/spirals$/);
});

test("runs table: a filter and a sort give the API's rows in the API's order", async ({ page }) => {
  const all = await runs("spirals", { limit: 1000 });
  await page.goto("/p/spirals");
  await expect(page.getByTestId("runs-scroller")).toHaveAttribute("data-total", String(all.total));
  await expect.poll(() => tableIds(page)).toEqual(all.runs.map((r) => r.id));

  const filter = "config.lr > 0.5";
  await page.getByTestId("filter-input").fill(filter);
  await expect(page).toHaveURL(/filter=config\.lr/);
  const filtered = await runs("spirals", { filter, limit: 1000 });
  expect(filtered.total).toBeGreaterThan(0);
  expect(filtered.total).toBeLessThan(all.total);
  await expect(page.getByTestId("runs-scroller")).toHaveAttribute("data-total", String(filtered.total));
  await expect.poll(() => tableIds(page)).toEqual(filtered.runs.map((r) => r.id));
  for (const id of await tableIds(page)) {
    await expect(page.locator(`.tr[data-run="${id}"] [data-col="config.lr"]`)).toHaveText("1");
  }

  // Sort by a metric: click its header (numbers sort descending first).
  let header = page.locator('.th[data-col="metrics.val/acc"]');
  if ((await header.count()) === 0) {
    await page.getByTestId("column-chooser").click();
    await page.locator(".metric-item", { hasText: "val/acc" }).locator("label.agg", { hasText: "last" }).locator("input").check();
    await page.keyboard.press("Escape");
    header = page.locator('.th[data-col="metrics.val/acc"]');
  }
  await header.click();
  await expect(page).toHaveURL(/sort=-metrics\.val\/acc/);
  const sorted = await runs("spirals", { filter, sort: "-metrics.val/acc", limit: 1000 });
  await expect.poll(() => tableIds(page)).toEqual(sorted.runs.map((r) => r.id));
  await header.click();
  await expect(page).toHaveURL(/sort=metrics\.val\/acc/);
  const asc = await runs("spirals", { filter, sort: "metrics.val/acc", limit: 1000 });
  await expect.poll(() => tableIds(page)).toEqual(asc.runs.map((r) => r.id));

  // The view is in the URL: a reload shows the same rows.
  await page.reload();
  await expect.poll(() => tableIds(page)).toEqual(asc.runs.map((r) => r.id));
  await expect(page.getByTestId("filter-input")).toHaveValue(filter);

  await page.goto("/p/spirals");
  await screenshots(page, "runs");
});

test("the filter box shows the server's error with its column, and completes field names", async ({ page }) => {
  await page.goto("/p/spirals");
  const input = page.getByTestId("filter-input");
  await input.fill("config.lr >");
  const err = page.getByTestId("filter-error");
  await expect(err).toContainText("column 12");
  await expect(err).toContainText("expected a value");
  await expect(page).not.toHaveURL(/filter=/);
  await screenshots(page, "runs-filter-error");

  await input.fill("");
  await input.pressSequentially("metrics.val/a");
  const suggestions = page.getByTestId("filter-suggestions");
  await expect(suggestions).toContainText("metrics.val/acc");
  await input.press("Tab");
  await expect(input).toHaveValue("metrics.val/acc ");
  await input.pressSequentially("> 0.9");
  await expect(page).toHaveURL(/filter=metrics\.val%2Facc|filter=metrics\.val\/acc/);
  const r = await runs("spirals", { filter: "metrics.val/acc > 0.9" });
  await expect(page.getByTestId("runs-scroller")).toHaveAttribute("data-total", String(r.total));
});

test("group by a config key shows each group's count and mean ± std", async ({ page }) => {
  const g = await apiGet<{ groups: { value: unknown; count: number; metrics: Record<string, { mean: number; std: number; n: number }> }[] }>(
    "/api/v1/projects/spirals/groups?by=config.lr",
  );
  await page.goto("/p/spirals?group=config.lr");
  const rows = page.locator("[data-testid=groups-table] .group-row");
  await expect(rows).toHaveCount(g.groups.length);
  const lr1 = g.groups.find((x) => x.value === 1);
  expect(lr1?.count).toBe(2);
  await expect(page.locator('.group-row[data-group="1"] td.num').first()).toHaveText("2");
  await expect(page.locator('.group-row[data-group="1"]')).toContainText("±");
  await screenshots(page, "runs-grouped");
});

test("virtualized table: renders only a window and pages through /runs (450 runs)", async ({ page }) => {
  const bulk = await runs("bulk", { limit: 1 });
  expect(bulk.total).toBe(450);
  await page.goto("/p/bulk?charts=0");
  const scroller = page.getByTestId("runs-scroller");
  await expect(scroller).toHaveAttribute("data-total", "450");
  const rendered = await page.locator(".tbody .tr").count();
  expect(rendered).toBeGreaterThan(10);
  expect(rendered).toBeLessThan(100);
  await scroller.evaluate((el) => (el.scrollTop = el.scrollHeight));
  await expect(page.locator('.tr[data-index="449"]')).toBeVisible();
  const oldest = await runs("bulk", { sort: "created", limit: 1 });
  await expect(page.locator('.tr[data-index="449"]')).toHaveAttribute("data-run", oldest.runs[0].id);
  const table = await page.evaluate(() => (window as unknown as { __labbookTable?: { loadedPages: number[] } }).__labbookTable);
  expect(table?.loadedPages).toContain(2);
  expect(table?.loadedPages).not.toContain(1); // skipped: never visible
});

test("selection: shift-click a range, bulk tag, delete and undo", async ({ page }) => {
  await page.goto("/p/bulk?charts=0");
  await expect(page.getByTestId("runs-scroller")).toHaveAttribute("data-total", "450");
  const boxes = page.locator(".tbody .tr .td.check input");
  await boxes.nth(0).click();
  await boxes.nth(4).click({ modifiers: ["Shift"] });
  await expect(page.getByTestId("selection-bar")).toContainText("5 selected");
  const ids = (await tableIds(page)).slice(0, 5);
  await expect(page).toHaveURL(new RegExp(`runs=${ids.join(",")}`));

  await page.getByTestId("bulk-tag").click();
  await page.getByTestId("bulk-tag-input").fill("e2e-picked");
  await page.getByTestId("bulk-tag-input").press("Enter");
  await expect.poll(async () => (await runs("bulk", { filter: 'tags contains "e2e-picked"' })).total).toBe(5);
  await expect(page.locator(`.tr[data-run="${ids[0]}"] .tag`, { hasText: "e2e-picked" })).toBeVisible();

  await page.getByTestId("bulk-delete").click();
  await expect.poll(async () => (await runs("bulk")).total).toBe(445);
  await expect(page.getByTestId("runs-scroller")).toHaveAttribute("data-total", "445");
  await page.locator(".toast button", { hasText: "Undo" }).click();
  await expect.poll(async () => (await runs("bulk")).total).toBe(450);
  await expect(page.getByTestId("runs-scroller")).toHaveAttribute("data-total", "450");
});

test("run page: config, summary, drawn charts, logs with search, environment and code", async ({ page }) => {
  const run = (await runs("spirals", { filter: 'config.lr = 1.0 and config.model.hidden = 64 and name != "live-run"' })).runs[0];
  const detail = await apiGet<ApiRun & { environment: { git?: { dirty?: boolean; diff?: string } } | null }>(`/api/v1/runs/${run.id}`);
  await page.goto(`/p/spirals/run/${run.id}`);
  await expect(page.locator("h1")).toHaveText(run.name);
  await expect(page.locator(".run-title .pill")).toHaveText("finished");
  await expect(page.locator('[data-testid=config-table] tr', { hasText: "model.hidden" })).toContainText("64");
  const valAcc = run.metrics["val/acc"];
  await expect(page.locator('[data-testid=summary-table] tr', { hasText: "val/acc" }).locator("td").nth(4)).toHaveText(String(valAcc.count));

  for (const m of ["train/acc", "train/loss", "val/acc", "val/loss"]) await waitForPoints(page, m, run.metrics[m].count);
  const dbg = await chartDebug(page, "val/acc");
  expect(dbg?.perRun[run.id]).toBe(valAcc.count); // fewer points than pixels: sent whole
  for (const m of ["train/acc", "train/loss", "val/acc", "val/loss"]) {
    await expect.poll(async () => (await coloredPixels(page))[m], { message: `${m} is drawn` }).toBeGreaterThan(200);
  }
  await screenshots(page, "run");

  await page.getByRole("tab", { name: "Logs" }).click();
  await expect(page.getByTestId("log")).toContainText("epoch");
  await page.getByTestId("log-search").fill("val/acc");
  await expect(page.getByTestId("log-matches")).toHaveText(/^[1-9]\d* match/);
  expect(await page.locator("[data-testid=log] mark").count()).toBeGreaterThan(0);
  await screenshots(page, "run-logs");

  await page.getByRole("tab", { name: "Environment" }).click();
  await page.getByTestId("package-search").fill("numpy");
  await expect(page.locator(".pkg-table tbody tr")).toHaveCount(1);
  await expect(page.locator(".pkg-table tbody tr")).toContainText("numpy");
  await screenshots(page, "run-environment");

  await page.getByRole("tab", { name: "Code" }).click();
  if (detail.environment?.git?.diff) {
    await expect(page.getByTestId("diff")).toBeVisible();
    expect(await page.locator("[data-testid=diff] .dl.add, [data-testid=diff] .dl.del").count()).toBeGreaterThan(0);
  }
  await screenshots(page, "run-code");
});

test("charts: zooming refetches /series with lo/hi and the range gets denser; double-click resets", async ({ page }) => {
  const long = await runByName("spirals", "long-curve");
  const seriesRequests: string[] = [];
  page.on("request", (r) => r.url().includes("/api/v1/series") && seriesRequests.push(r.url()));
  await page.goto(`/p/spirals/charts?runs=${long.id}`);
  await waitForPoints(page, "train/loss");
  const base = await chartDebug(page, "train/loss");
  const baseSteps = base?.steps[long.id] ?? [];
  expect(baseSteps.length).toBeGreaterThan(100);
  expect(baseSteps.length).toBeLessThan(long.metrics["train/loss"].count); // downsampled to the panel width
  expect(baseSteps).toContain(120000); // the spike survives downsampling
  await expect.poll(async () => (await coloredPixels(page))["train/loss"]).toBeGreaterThan(200);

  // Drag across 10% of the plot.
  const over = page.locator('.chart-panel[data-metric="train/loss"] .u-over');
  const box = await over.boundingBox();
  if (!box) throw new Error("no plot area");
  const y = box.y + box.height / 2;
  await page.mouse.move(box.x + box.width * 0.4, y);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.45, y, { steps: 5 });
  await page.mouse.move(box.x + box.width * 0.5, y, { steps: 5 });
  await page.mouse.up();
  await expect(page).toHaveURL(/zoom=/);
  await expect.poll(() => seriesRequests.some((u) => /[?&]lo=\d+/.test(u) && /[?&]hi=\d+/.test(u) && u.includes("train%2Floss"))).toBe(true);
  await expect.poll(async () => (await chartDebug(page, "train/loss"))?.lo ?? null).not.toBeNull();
  const zoomed = await chartDebug(page, "train/loss");
  const lo = zoomed?.lo ?? 0;
  const hi = zoomed?.hi ?? 0;
  const before = baseSteps.filter((s) => s >= lo && s <= hi).length;
  const after = (zoomed?.steps[long.id] ?? []).filter((s) => s >= lo && s <= hi).length;
  expect(after, `points in [${lo}, ${hi}]`).toBeGreaterThan(before * 3);
  await expect(page.locator('.chart-panel[data-metric="train/loss"]')).toHaveAttribute("data-zoomed", "1");
  await screenshots(page, "charts-zoomed");

  await over.dblclick();
  await expect(page).not.toHaveURL(/zoom=/);
  await expect(page.locator('.chart-panel[data-metric="train/loss"]')).toHaveAttribute("data-zoomed", "0");

  // Smoothing and log y are URL state too (and NaN/∞ in val/acc do not break the panel).
  await page.goto(`/p/spirals/charts?runs=${long.id}&smooth=0.9&logy=1`);
  await waitForPoints(page, "train/loss");
  await waitForPoints(page, "val/acc");
  await expect.poll(async () => (await coloredPixels(page))["train/loss"]).toBeGreaterThan(200);
  await expect.poll(async () => (await coloredPixels(page))["val/acc"]).toBeGreaterThan(200);
});

test("charts page: the selected runs, one color each, PNG and SVG export", async ({ page }) => {
  const grid = (await runs("spirals", { filter: 'tags contains "grid"', limit: 100 })).runs;
  const ids = grid.map((r) => r.id);
  await page.goto(`/p/spirals/charts?runs=${ids.join(",")}`);
  for (const m of ["train/loss", "val/acc"]) await waitForPoints(page, m);
  const dbg = await chartDebug(page, "val/acc");
  expect(dbg?.runs).toBe(ids.length);
  for (const r of grid) expect(dbg?.perRun[r.id]).toBe(r.metrics["val/acc"].count);
  await expect(page.getByTestId("legend").locator(".legend-item")).toHaveCount(ids.length);
  await expect.poll(async () => (await coloredPixels(page))["val/acc"]).toBeGreaterThan(500);
  await screenshots(page, "charts");

  // Relative wall time on the x axis.
  await page.goto(`/p/spirals/charts?runs=${ids.join(",")}&x=rel`);
  await waitForPoints(page, "val/acc");
  await expect.poll(async () => (await coloredPixels(page))["val/acc"]).toBeGreaterThan(500);
  await page.goto(`/p/spirals/charts?runs=${ids.join(",")}`);
  await waitForPoints(page, "val/acc");

  // Legend click hides a run (URL state) and the panel drops it.
  await page.getByTestId("legend").locator(".legend-item").first().click();
  await expect(page).toHaveURL(/hide=/);
  await expect.poll(async () => (await chartDebug(page, "val/acc"))?.runs).toBe(ids.length - 1);

  const panel = page.locator('.chart-panel[data-metric="val/acc"]');
  await panel.hover();
  const [png] = await Promise.all([page.waitForEvent("download"), panel.getByTitle("Download PNG").click()]);
  expect(png.suggestedFilename()).toBe("val_acc.png");
  const [svg] = await Promise.all([page.waitForEvent("download"), panel.getByTitle("Download SVG").click()]);
  const svgText = await (await svg.createReadStream()).toArray().then((chunks) => Buffer.concat(chunks).toString());
  expect(svgText).toContain("<svg");
  expect((svgText.match(/<polyline/g) ?? []).length).toBeGreaterThanOrEqual(ids.length - 1);
});

test("compare: the differing config key comes first, with deltas against the baseline", async ({ page }) => {
  const a = (await runs("spirals", { filter: "config.lr = 0.3 and config.model.hidden = 8" })).runs[0];
  const b = (await runs("spirals", { filter: "config.lr = 1.0 and config.model.hidden = 8" })).runs[0];
  await page.goto(`/p/spirals/compare?runs=${a.id},${b.id}&base=${a.id}`);
  const rows = page.locator("[data-testid=config-diff] tbody tr[data-key]");
  await expect(rows.first()).toHaveAttribute("data-key", "lr");
  await expect(page.locator("[data-testid=config-diff] tbody tr.differs")).toHaveCount(1);
  await expect(rows.first()).toContainText("0.3");
  await expect(rows.first()).toContainText("1");
  // Identical keys are folded away until asked for.
  await expect(page.locator("[data-testid=config-diff] tr.same")).toHaveCount(0);
  await page.locator(".fold-row button").click();
  expect(await page.locator("[data-testid=config-diff] tr.same").count()).toBeGreaterThan(2);
  // Deltas against the baseline.
  const row = page.locator("[data-testid=metrics-diff] tbody tr", { hasText: "val/acc" }).first();
  await expect(row.locator(".delta")).toHaveCount(1);
  await expect(page.getByTestId("env-diff")).toBeVisible();
  await screenshots(page, "compare");
});

test("parallel coordinates: one line per run; a brush selects the runs inside it", async ({ page }) => {
  const all = await runs("spirals", { limit: 1000 });
  await page.goto("/p/spirals/parallel?axis=config.lr&axis=config.model.hidden&axis=metrics.val/acc");
  const svg = page.getByTestId("parallel");
  await expect(svg).toHaveAttribute("data-lines", String(all.total));
  expect(await svg.locator("polyline.pc-line").count()).toBeGreaterThanOrEqual(all.total - 1);
  await screenshots(page, "parallel");

  // Brush the top fifth of the lr axis: lr = 1.0 only.
  const hit = page.getByTestId("brush-0");
  const box = await hit.boundingBox();
  if (!box) throw new Error("no axis");
  await page.mouse.move(box.x + box.width / 2, box.y + 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height * 0.2, { steps: 4 });
  await page.mouse.up();
  await expect(page).toHaveURL(/brush=/);
  const expected = (await runs("spirals", { filter: "config.lr > 0.8", limit: 100 })).runs.map((r) => r.id).sort();
  await expect.poll(() => new URL(page.url()).searchParams.get("runs")?.split(",").sort()).toEqual(expected);
  await expect(svg).toHaveAttribute("data-active", String(expected.length));
  await screenshots(page, "parallel-brushed");
});

test("scatter: one point per run with both fields; hover names the run, click selects it", async ({ page }) => {
  const all = await runs("spirals", { limit: 1000 });
  const withBoth = all.runs.filter((r) => r.metrics["val/acc"] && typeof r.config["lr"] === "number");
  await page.goto("/p/spirals/scatter?sx=config.lr&sy=metrics.val/acc&xlog=1");
  const svg = page.getByTestId("scatter");
  await expect(svg).toHaveAttribute("data-points", String(withBoth.length));
  await expect(svg.locator("circle.pt")).toHaveCount(withBoth.length);
  const first = withBoth[0];
  const pt = svg.locator(`circle.pt[data-run="${first.id}"]`);
  await pt.hover();
  await expect(page.getByTestId("scatter-hover")).toContainText(first.name);
  await pt.click();
  await expect(page).toHaveURL(new RegExp(`runs=${first.id}`));
  await screenshots(page, "scatter");
});

test("notebook: a note saved on the page survives a reload", async ({ page }) => {
  await page.goto("/p/spirals/notebook");
  await expect(page.getByTestId("timeline")).toBeVisible();
  const text = `Width matters more than lr — **checked ${Date.now()}**`;
  await page.getByTestId("note-input").fill(text);
  await page.getByTestId("note-save").click();
  const entry = page.getByTestId("note-entry").filter({ hasText: "Width matters more than lr" });
  await expect(entry).toBeVisible();
  await expect(entry.locator("strong")).toContainText("checked");
  await page.reload();
  await expect(entry).toBeVisible();
  const nb = await apiGet<{ entries: { kind: string; text?: string }[] }>("/api/v1/projects/spirals/notebook");
  expect(nb.entries.some((e) => e.kind === "note" && e.text === text)).toBe(true);
  // Runs appear with their why and a headline metric.
  await expect(page.locator(".tl-run", { hasText: "long-curve" })).toBeVisible();
  await screenshots(page, "notebook");

  // A run's own notebook (the long run has a `run.note()` entry).
  const long = await runByName("spirals", "long-curve");
  await page.goto(`/p/spirals/run/${long.id}?tab=notebook`);
  await expect(page.locator(".card.note")).toContainText("Checked the spike");
  await screenshots(page, "run-notebook");
});

test("live: the running run's chart grows without a reload", async ({ page }) => {
  const live = await runByName("spirals", "live-run");
  expect(live.status).toBe("running");
  const appends: string[] = [];
  page.on("request", (r) => r.url().includes("/api/v1/series") && r.url().includes("after=") && appends.push(r.url()));
  await page.goto(`/p/spirals/run/${live.id}`);
  await page.evaluate(() => ((window as unknown as { __noReload: boolean }).__noReload = true));
  await waitForPoints(page, "live/value");
  const p0 = (await chartDebug(page, "live/value"))?.points ?? 0;
  await expect.poll(async () => (await chartDebug(page, "live/value"))?.points ?? 0, { timeout: 15000 }).toBeGreaterThan(p0 + 5);
  expect(appends.length).toBeGreaterThan(0);
  expect(await page.evaluate(() => (window as unknown as { __noReload?: boolean }).__noReload)).toBe(true);
  await expect(page.locator(".run-title .pill")).toHaveText("running");
  await screenshots(page, "run-live");

  // System metrics of the live run (sampled every second by the fixture).
  await page.getByRole("tab", { name: "System" }).click();
  await expect(page).toHaveURL(/tab=system/);
  await waitForPoints(page, "sys/rss_mb");
  await screenshots(page, "run-system");

  // The runs table updates the live row in place.
  await page.goto("/p/spirals?charts=0");
  const row = page.locator(`.tr[data-run="${live.id}"]`);
  await expect(row.locator(".pill")).toHaveText("running");
  const live0 = Number(await page.getByTestId("runs-scroller").getAttribute("data-live"));
  await expect.poll(async () => Number(await page.getByTestId("runs-scroller").getAttribute("data-live")), { timeout: 15000 }).toBeGreaterThan(live0);
});

test("empty and error states say what to do", async ({ page }) => {
  await page.goto("/p/no-such-project");
  await expect(page.locator(".table-wrap .empty-title")).toHaveText("No runs yet");
  await expect(page.locator(".table-wrap .empty")).toContainText("labbook.init");
  await page.goto("/p/spirals/run/zzzzzzzz");
  await expect(page.locator(".error-box")).toBeVisible();
  await page.goto("/p/spirals/compare");
  await expect(page.locator(".empty-title")).toContainText("two or more runs");
  await screenshots(page, "compare-empty");
});
