// The dashboard end to end, against the real server and real runs (see
// global-setup.ts). Every check compares what the page shows with what the
// API returns.
import type { Page } from "@playwright/test";
import type { DrawnPanel, RGB } from "./drawn";
import { alpha, close, colorKey, countColor, decodePng, distinctColors, drawn, ema, pixelOf, probe, rgb } from "./drawn";
import type { CodeFixture } from "./global-setup";
import type { ApiRun } from "./helpers";
import { apiGet, chartDebug, coloredPixels, expect, runByName, runs, screenshots, shown, tableIds, test } from "./helpers";

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
  // Every filtered run has lr 1: a key with one value is no default column.
  expect(new Set(filtered.runs.map((r) => r.config.lr))).toEqual(new Set([1]));
  await expect(page.locator('.th[data-col="config.model.hidden"]')).toBeVisible();
  await expect(page.locator('.th[data-col="config.lr"]')).toHaveCount(0);

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
  // On a loaded CI runner the keys typed right after Tab once landed
  // before a caret moved on the next frame: "metrics.val/acc 0.9>".
  await input.pressSequentially("> 0.9");
  await expect(input).toHaveValue("metrics.val/acc > 0.9");
  await expect(page).toHaveURL(/filter=metrics\.val%2Facc|filter=metrics\.val\/acc/);
  const r = await runs("spirals", { filter: "metrics.val/acc > 0.9" });
  await expect(page.getByTestId("runs-scroller")).toHaveAttribute("data-total", String(r.total));
});

test("group by a config key: each group's count, mean and std are those of its runs' last values", async ({ page }) => {
  // The seeds project: 3 learning rates × 3 seeds and a lone run, every
  // run's curve its own (the fixture's noise), one run without "acc".
  const all = (await runs("seeds", { limit: 1000 })).runs;
  expect(all.length).toBe(10);
  const byLr = new Map<number, ApiRun[]>();
  for (const r of all) byLr.set(r.config.lr as number, [...(byLr.get(r.config.lr as number) ?? []), r]);
  // Mean and sample std (n − 1) of the finite last values, computed here.
  const stats = (members: ApiRun[], k: string) => {
    const xs = members.map((r) => r.metrics[k]?.last).filter((v): v is number => typeof v === "number" && Number.isFinite(v));
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const std = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
    return { n: xs.length, mean, std };
  };
  const api = await apiGet<{ groups: { value: unknown; count: number; run_ids: string[]; metrics: Record<string, { mean: number; std: number; n: number }> }[] }>(
    "/api/v1/projects/seeds/groups?by=config.lr",
  );
  expect(api.groups.map((g) => g.value).sort()).toEqual([...byLr.keys()].sort());

  await page.goto("/p/seeds?group=config.lr");
  const table = page.getByTestId("groups-table");
  await expect(table.locator(".group-row")).toHaveCount(byLr.size);
  // The metric columns, by their headers ("loss mean ± std").
  const heads = await table.locator("thead th").allTextContents();
  const metricCols = heads.map((h, i) => ({ k: h.replace(/mean ± std$/, "").trim(), i })).filter((c) => heads[c.i].endsWith("mean ± std"));
  expect(metricCols.map((c) => c.k).sort()).toEqual(["acc", "loss"]);

  let spread = 0;
  for (const [lr, members] of byLr) {
    const g = api.groups.find((x) => x.value === lr);
    expect(g, `the API's group lr=${lr}`).toBeDefined();
    expect(g?.count).toBe(members.length);
    expect([...(g?.run_ids ?? [])].sort()).toEqual(members.map((r) => r.id).sort());
    const row = table.locator(`.group-row[data-group="${lr}"]`);
    await expect(row.locator("td.num").first()).toHaveText(String(members.length));
    const cells = await row.locator("td").allTextContents();
    for (const { k, i } of metricCols) {
      const want = stats(members, k);
      const got = g?.metrics[k];
      expect(got?.n, `lr=${lr} ${k}: n`).toBe(want.n);
      expect(close(got?.mean ?? NaN, want.mean, 1e-12), `lr=${lr} ${k}: API mean ${got?.mean} vs ${want.mean}`).toBe(true);
      expect(Math.abs((got?.std ?? NaN) - want.std) <= 1e-12 * Math.max(1, want.mean), `lr=${lr} ${k}: API std ${got?.std} vs ${want.std}`).toBe(true);
      // The cell shows both to 4 significant digits ("0.1234 ± 0.0567"); a
      // group of one shows its value alone.
      const m = /^\s*(\S+)(?:\s*±\s*(\S+))?\s*$/.exec(cells[i]);
      expect(m, `lr=${lr} ${k}: cell "${cells[i]}"`).not.toBeNull();
      expect(shown(m?.[1] ?? ""), `lr=${lr} ${k}: mean shown as "${m?.[1]}", computed ${want.mean}`).toBeCloseToSig(want.mean);
      if (want.n > 1) {
        expect(want.std, `lr=${lr} ${k}: the fixture's runs differ`).toBeGreaterThan(0);
        expect(shown(m?.[2] ?? ""), `lr=${lr} ${k}: std shown as "${m?.[2]}", computed ${want.std}`).toBeCloseToSig(want.std);
        spread++;
      } else {
        expect(m?.[2], `lr=${lr} ${k}: one run, no std`).toBeUndefined();
      }
    }
  }
  expect(spread, "groups of several runs with a std to check").toBeGreaterThanOrEqual(6);
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
    const s = await wholeSeries(run.id, m);
    expectPoints((await drawn(page, m))?.series[0]?.points, s.steps.map((st, i) => [st, s.values[i]]), `${m} on the run page`);
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

});

test("run page, Code tab: the dirty repository's exact diff, the file left out of it, the untracked file and the remote without credentials", async ({ page }) => {
  // global-setup.ts made the repository: a commit, then params.yaml changed,
  // .env changed (a secret-named file) and notes/scratch.txt untracked.
  const code = JSON.parse(process.env.LABBOOK_E2E_CODE ?? "null") as CodeFixture | null;
  if (!code) throw new Error("LABBOOK_E2E_CODE is not set (global-setup.ts)");
  const detail = await apiGet<{ environment: { git?: { commit: string; branch: string; remote_url: string | null; dirty: boolean; diff: string; diff_excluded?: string[]; untracked?: string[] } } | null }>(
    `/api/v1/runs/${code.run}`,
  );
  const git = detail.environment?.git;
  expect(git?.diff, "the stored diff is git's, without .env").toBe(code.diff);
  expect(code.diff).toContain("+schedule: cosine");
  expect(git?.diff_excluded).toEqual(code.excluded);
  expect(git?.untracked).toEqual(code.untracked);
  expect(git?.remote_url).toBe(code.remoteClean);

  await page.goto(`/p/code/run/${code.run}`);
  await page.getByRole("tab", { name: "Code" }).click();
  await expect(page).toHaveURL(/tab=code/);
  const diff = page.getByTestId("diff");
  await expect(diff).toBeVisible();
  // Line for line what git printed, each line classed by its kind.
  const expected = code.diff.split("\n");
  await expect(diff.locator(".dl")).toHaveCount(expected.length);
  const lines = await diff.locator(".dl").evaluateAll((els) => els.map((e) => ({ text: e.textContent ?? "", cls: e.className })));
  expect(lines.map((l) => l.text)).toEqual(expected.map((l) => l || " "));
  const kind = (l: string) => (l.startsWith("+++") || l.startsWith("---") || l.startsWith("diff ") || l.startsWith("index ") ? "meta" : l.startsWith("+") ? "add" : l.startsWith("-") ? "del" : l.startsWith("@@") ? "hunk" : "");
  expect(lines.map((l) => l.cls.replace(/^dl\s*/, "").trim())).toEqual(expected.map(kind));
  const adds = expected.filter((l) => kind(l) === "add").length;
  const dels = expected.filter((l) => kind(l) === "del").length;
  const changes = page.locator("section.card", { has: page.locator("h2", { hasText: "Uncommitted changes" }) });
  await expect(changes.locator(".add-text").first()).toHaveText(`+${adds}`);
  await expect(changes.locator(".del-text").first()).toHaveText(`−${dels}`);

  await expect(page.getByTestId("diff-excluded").locator("li")).toHaveText(code.excluded);
  await expect(page.getByTestId("untracked").locator("li")).toHaveText(code.untracked);
  const kv = (k: string) => page.locator(".table.kv tr", { has: page.locator("td.key", { hasText: new RegExp(`^${k}$`) }) }).locator("td").nth(1);
  await expect(kv("Remote")).toHaveText(code.remoteClean);
  await expect(kv("Commit")).toHaveText(code.commit);
  await expect(kv("Branch")).toHaveText(code.branch);
  await expect(kv("Working tree")).toHaveText("dirty");
  // Neither the .env value nor the remote's credentials reach the page.
  const html = await page.content();
  for (const s of code.secrets) expect(html, `the page holds ${s}`).not.toContain(s);
  await screenshots(page, "run-code");
});

test("charts opened from a link ask for their runs once and for each panel's curve once: the prefetched curves are taken, not asked for again", async ({ page }) => {
  const long = await runByName("spirals", "long-curve");
  const runsRequests: string[] = [];
  const seriesRequests: string[] = [];
  page.on("request", (r) => {
    if (r.url().includes("/api/v1/projects/spirals/runs")) runsRequests.push(r.url());
    if (r.url().includes("/api/v1/series")) seriesRequests.push(r.url());
  });
  await page.goto(`/p/spirals/charts?runs=${long.id}`);
  await waitForPoints(page, "train/loss");
  await page.waitForTimeout(500); // time for a repeated request to show
  expect(runsRequests, runsRequests.join("\n")).toHaveLength(1);
  const keys = seriesRequests.map((u) => new URL(u).searchParams.get("keys"));
  expect(keys).toContain("train/loss");
  expect(new Set(keys).size, seriesRequests.join("\n")).toBe(keys.length);
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

type WireSeries = { run: string; key: string; steps: number[]; ts_ms?: number[]; values: (number | string)[]; total: number; downsampled: boolean };

/** A run's whole curve from the API (never downsampled: the tests' runs are small). */
async function wholeSeries(run: string, key: string): Promise<{ steps: number[]; ts: number[]; values: number[] }> {
  const r = await apiGet<{ series: WireSeries[] }>(`/api/v1/series?runs=${run}&keys=${encodeURIComponent(key)}&buckets=10000`);
  const s = r.series[0];
  expect(s?.downsampled, `${run} ${key} sent whole`).toBe(false);
  return { steps: s.steps, ts: s.ts_ms ?? [], values: s.values.map(Number) };
}

/** The legend's colors by run name. */
async function legendColors(page: Page, scope = ""): Promise<Map<string, RGB>> {
  const items = await page.locator(`${scope} [data-testid=legend] .legend-item`).evaluateAll((els) =>
    els.map((e) => ({ name: e.textContent ?? "", color: getComputedStyle(e.querySelector(".swatch") as Element).backgroundColor })),
  );
  return new Map(items.map((i) => [i.name, rgb(i.color)]));
}

/** Draws are compared point by point with what the test computes. */
function expectPoints(got: [number, number | null][] | undefined, want: [number, number | null][], what: string) {
  expect(got?.length, `${what}: number of points`).toBe(want.length);
  const bad = want.filter(([x, y], i) => {
    const [gx, gy] = got?.[i] ?? [NaN, NaN];
    return !close(gx, x) || (y === null ? gy !== null : gy === null || !close(gy, y));
  });
  expect(bad.slice(0, 5), `${what}: points that differ from the expected ones`).toEqual([]);
}

/** The share of `targets` where the canvas has `color`, and the targets
 * that are at least `apart` pixels from `others` (the places where a
 * mistaken drawing would be), with the share there. */
async function hitsApart(page: Page, metric: string, targets: [number, number][], others: [number, number][], color: RGB, apart = 6) {
  const keep = targets.map((t, i) => Math.abs(t[1] - others[i][1]) + Math.abs(t[0] - others[i][0]) >= apart);
  const at = targets.filter((_, i) => keep[i]);
  const alt = others.filter((_, i) => keep[i]);
  const hits = await probe(page, metric, at, color);
  const altHits = await probe(page, metric, alt, color);
  return { n: at.length, share: hits.filter(Boolean).length / Math.max(1, at.length), altShare: altHits.filter(Boolean).length / Math.max(1, alt.length) };
}

test("charts: smoothing, log y and relative time draw the curves where the API's values put them", async ({ page }) => {
  const r1 = await runByName("seeds", "lr1.0-s1");
  const r2 = await runByName("seeds", "lr0.01-s2");
  const loss = await wholeSeries(r1.id, "loss");
  const raw: [number, number][] = loss.steps.map((s, i) => [s, loss.values[i]]);

  // EMA smoothing 0.9: a faint raw curve and the smoothed one in the run's color.
  await page.goto(`/p/seeds/charts?runs=${r1.id}&smooth=0.9`);
  await waitForPoints(page, "loss", loss.steps.length);
  const color = (await legendColors(page)).get(r1.name);
  if (!color) throw new Error(`${r1.name} is not in the legend`);
  let d = await drawn(page, "loss");
  const mine = d?.series.filter((s) => s.label === r1.name) ?? [];
  expect(mine.length, "a raw and a smoothed curve").toBe(2);
  const smoothed = ema(loss.values, 0.9);
  const smooth = mine.find((s) => colorKey(rgb(s.stroke)) === colorKey(color) && alpha(s.stroke) === 1);
  const faint = mine.find((s) => s !== smooth);
  expectPoints(smooth?.points, loss.steps.map((s, i) => [s, smoothed[i]]), "the smoothed curve");
  expectPoints(faint?.points, raw, "the raw curve behind it");
  expect(faint && rgb(faint.stroke), "the raw curve has the run's hue").toEqual(color);
  expect(alpha(faint?.stroke ?? ""), `the raw curve is faint: ${faint?.stroke}`).toBeLessThan(0.5);
  // And on the canvas: the run's color lies on the smoothed values, not the raw ones.
  if (!d) throw new Error("no chart");
  const at = (p: DrawnPanel, pts: [number, number | null][], logy = false) => pts.map(([x, y]) => pixelOf(p, x, y ?? NaN, logy));
  let h = await hitsApart(page, "loss", at(d, smooth?.points ?? []), at(d, raw), color);
  expect(h.n, "points where the smoothed and raw curves are apart").toBeGreaterThan(20);
  expect(h.share, "share of smoothed values drawn in the run's color").toBeGreaterThan(0.9);
  expect(h.altShare, "share of raw values drawn in the run's full color").toBeLessThan(0.3);

  // Log y: the raw curve, placed by log10 of its values.
  await page.goto(`/p/seeds/charts?runs=${r1.id}&logy=1`);
  await waitForPoints(page, "loss", loss.steps.length);
  d = await drawn(page, "loss");
  if (!d) throw new Error("no chart");
  expect(d.series.length).toBe(1);
  expectPoints(d.series[0].points, raw, "the curve on a log axis");
  expect(d.y.min, "a log axis starts above 0").toBeGreaterThan(0);
  expect(Math.log10(Math.max(...loss.values) / Math.min(...loss.values)), "the curve spans decades").toBeGreaterThan(2);
  h = await hitsApart(page, "loss", at(d, raw, true), at(d, raw, false), color);
  expect(h.n, "points where log and linear placement differ").toBeGreaterThan(50);
  expect(h.share, "share of values drawn at their log10 height").toBeGreaterThan(0.9);
  expect(h.altShare, "share drawn at their linear height").toBeLessThan(0.3);

  // Relative time: x is seconds since each run started, from the points'
  // wall times (the two runs log at different paces).
  const pair = [r1, r2];
  await page.goto(`/p/seeds/charts?runs=${pair.map((r) => r.id).join(",")}&x=rel`);
  await waitForPoints(page, "loss", 2 * loss.steps.length);
  d = await drawn(page, "loss");
  if (!d) throw new Error("no chart");
  const colors = await legendColors(page);
  for (const r of pair) {
    const s = await wholeSeries(r.id, "loss");
    const rel: [number, number][] = s.ts.map((t, i) => [(t - r.created_ms) / 1000, s.values[i]]);
    expect(rel[rel.length - 1][0] - rel[0][0], "wall time is not the step").not.toBeCloseTo(s.steps[s.steps.length - 1] - s.steps[0], 0);
    const series = d.series.find((x) => x.label === r.name);
    expectPoints(series?.points, rel, `${r.name} over relative time`);
    const byStep: [number, number][] = s.steps.map((st, i) => [st, s.values[i]]);
    const hr = await hitsApart(page, "loss", at(d, rel), at(d, byStep), colors.get(r.name) ?? [0, 0, 0]);
    expect(hr.n, `${r.name}: points where relative time and step differ`).toBeGreaterThan(50);
    expect(hr.share, `${r.name}: share drawn at its relative time`).toBeGreaterThan(0.8);
  }
  await screenshots(page, "charts-relative");
});

/** Distance from a point to the nearest segment of a polyline. */
function distanceToLine(p: [number, number], line: [number, number][]): number {
  let best = Infinity;
  for (let i = 0; i < line.length; i++) {
    const a = line[i];
    const b = line[Math.min(i + 1, line.length - 1)];
    const dx = b[0] - a[0];
    const dy = b[1] - a[1];
    const t = dx || dy ? Math.max(0, Math.min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / (dx * dx + dy * dy))) : 0;
    best = Math.min(best, Math.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy));
  }
  return best;
}

/** Checks that every run's curve on a panel is drawn in `colors` (by run
 * name): uPlot's stroke, and (with `pixels`) the canvas pixels at the run's
 * own points where no other run's curve passes within 4 px. */
async function expectLinesColored(page: Page, metric: string, colors: Map<string, RGB>, names: string[], { logy = false, pixels = true } = {}) {
  const d = await drawn(page, metric);
  if (!d) throw new Error(`no chart for ${metric}`);
  expect(d.series.map((s) => s.label).sort(), `${metric}: one curve per run`).toEqual([...names].sort());
  const lines = d.series.map((s) => ({ name: s.label, stroke: s.stroke, px: s.points.filter(([, y]) => y !== null).map(([x, y]) => pixelOf(d, x, y ?? NaN, logy)) }));
  for (const l of lines) {
    const want = colors.get(l.name);
    expect(want, `${metric}: ${l.name} has a legend color`).toBeDefined();
    if (!want) continue;
    expect(rgb(l.stroke), `${metric}: the stroke of ${l.name}`).toEqual(want);
    if (!pixels) continue;
    const others = lines.filter((o) => o !== l);
    const alone = l.px.filter((p) => others.every((o) => distanceToLine(p, o.px) >= 4));
    expect(alone.length, `${metric}: points of ${l.name} away from other curves`).toBeGreaterThanOrEqual(3);
    const hits = await probe(page, metric, alone, want);
    expect(hits.filter(Boolean).length / alone.length, `${metric}: share of ${l.name}'s own points drawn in its color`).toBeGreaterThan(0.8);
  }
}

test("colors: each run keeps one color in the legend, every panel's lines, the runs page, compare and scatter; runs that share one differ in line style", async ({ page }) => {
  const seeds = (await runs("seeds", { limit: 100 })).runs;
  const ids = seeds.map((r) => r.id);
  const names = new Map(seeds.map((r) => [r.id, r.name]));

  // Log y: the curves fan out, so each has stretches of its own.
  await page.goto(`/p/seeds/charts?runs=${ids.join(",")}&logy=1`);
  await waitForPoints(page, "loss", seeds.length * 120);
  await waitForPoints(page, "acc", (seeds.length - 1) * 120);
  const colors = await legendColors(page);
  expect([...colors.keys()].sort()).toEqual(seeds.map((r) => r.name).sort());
  // A run's color comes from its id alone, so it is the same on every page
  // whichever runs are beside it; two runs of one color here are told apart
  // by a dash pattern, shown in the legend's swatch too.
  const loss = await drawn(page, "loss");
  const looks = loss?.series.map((s) => `${colorKey(rgb(s.stroke))} ${JSON.stringify(s.dash)}`) ?? [];
  expect(new Set(looks).size, `a color and line style per run: ${looks.join(" · ")}`).toBe(seeds.length);
  const dashedInLegend = await page.locator("[data-testid=legend] .legend-item:has(.swatch.dashed)").allTextContents();
  expect(dashedInLegend.sort()).toEqual((loss?.series.filter((s) => s.dash).map((s) => s.label) ?? []).sort());
  const having = (m: string) => seeds.filter((r) => r.metrics[m]).map((r) => r.name);
  await expectLinesColored(page, "loss", colors, having("loss"), { logy: true });
  await expectLinesColored(page, "acc", colors, having("acc"), { logy: true, pixels: false }); // the curves overlap at the top
  await screenshots(page, "charts-colors");

  // The runs page, with the same runs selected: its legend and panels.
  await page.goto(`/p/seeds?runs=${ids.join(",")}&logy=1`);
  await waitForPoints(page, "loss", seeds.length * 120);
  expect(await legendColors(page)).toEqual(colors);
  await expectLinesColored(page, "loss", colors, having("loss"), { logy: true });

  // Compare: each run's swatch.
  await page.goto(`/p/seeds/compare?runs=${ids.join(",")}`);
  await expect(page.locator(".compare-run")).toHaveCount(ids.length);
  const swatches = await page.locator(".compare-run").evaluateAll((els) =>
    els.map((e) => ({ name: e.querySelector("a")?.textContent ?? "", color: getComputedStyle(e.querySelector(".swatch") as Element).backgroundColor })),
  );
  for (const s of swatches) expect(rgb(s.color), `compare: ${s.name}`).toEqual(colors.get(s.name));

  // Scatter colored by run: each point (the project holds just these runs).
  await page.goto("/p/seeds/scatter?sx=config.lr&sy=metrics.loss&sc=run&xlog=1");
  const pts = page.getByTestId("scatter").locator("circle.pt");
  await expect(pts).toHaveCount(ids.length);
  const fills = await pts.evaluateAll((els) => els.map((e) => ({ run: e.getAttribute("data-run") ?? "", fill: getComputedStyle(e).fill })));
  for (const f of fills) expect(rgb(f.fill), `scatter: ${names.get(f.run)}`).toEqual(colors.get(names.get(f.run) ?? ""));
});

test("charts page: the selected runs and their points; PNG and SVG export what the panel shows", async ({ page }) => {
  const grid = (await runs("spirals", { filter: 'tags contains "grid"', limit: 100 })).runs;
  const ids = grid.map((r) => r.id);
  await page.goto(`/p/spirals/charts?runs=${ids.join(",")}`);
  for (const m of ["train/loss", "val/acc"]) await waitForPoints(page, m);
  const dbg = await chartDebug(page, "val/acc");
  expect(dbg?.runs).toBe(ids.length);
  for (const r of grid) expect(dbg?.perRun[r.id]).toBe(r.metrics["val/acc"].count);
  await expect(page.getByTestId("legend").locator(".legend-item")).toHaveCount(ids.length);
  await screenshots(page, "charts");

  // Legend click hides a run (URL state) and the panel drops it.
  const colors = await legendColors(page);
  const first = await page.getByTestId("legend").locator(".legend-item").first().textContent();
  const hidden = grid.find((r) => r.name === first);
  await page.getByTestId("legend").locator(".legend-item").first().click();
  await expect(page).toHaveURL(new RegExp(`hide=${hidden?.id}`));
  await expect.poll(async () => (await chartDebug(page, "val/acc"))?.runs).toBe(ids.length - 1);
  const shownRuns = grid.filter((r) => r !== hidden);

  // PNG: the panel's canvas, pixel for pixel, under a title bar.
  const panel = page.locator('.chart-panel[data-metric="val/acc"]');
  await panel.hover();
  await page.mouse.move(0, 0); // no cursor or tooltip on the canvas
  const canvas = decodePng(Buffer.from(await panel.locator("canvas").evaluate((c) => (c as HTMLCanvasElement).toDataURL("image/png").split(",")[1]), "base64"));
  const [png] = await Promise.all([page.waitForEvent("download"), panel.getByTitle("Download PNG").click()]);
  expect(png.suggestedFilename()).toBe("val_acc.png");
  const img = decodePng(Buffer.concat(await (await png.createReadStream()).toArray()));
  const dpr = await page.evaluate(() => devicePixelRatio);
  expect([img.width, img.height], "the PNG's size: the canvas and a 36 px title bar").toEqual([canvas.width, canvas.height + 36 * dpr]);
  const pad = 36 * dpr * canvas.width * 4;
  let differ = 0;
  for (let i = 0; i < canvas.rgba.length; i += 4) {
    if (canvas.rgba[i + 3] === 255 && (canvas.rgba[i] !== img.rgba[pad + i] || canvas.rgba[i + 1] !== img.rgba[pad + i + 1] || canvas.rgba[i + 2] !== img.rgba[pad + i + 2])) differ++;
  }
  expect(differ, "opaque canvas pixels the PNG changed").toBe(0);
  expect(distinctColors(img), "colors in the PNG").toBeGreaterThan(50);
  for (const r of shownRuns) expect(countColor(img, colors.get(r.name) ?? [0, 0, 0]), `pixels of ${r.name}'s curve`).toBeGreaterThan(20);
  // Its title is drawn above the plot.
  let title = 0;
  for (let i = 0; i < pad; i += 4) if (Math.abs(img.rgba[i] - img.rgba[4]) + Math.abs(img.rgba[i + 1] - img.rgba[5]) + Math.abs(img.rgba[i + 2] - img.rgba[6]) > 150) title++;
  expect(title, "title pixels").toBeGreaterThan(50);

  // SVG: one polyline per shown run, in its color; none for the hidden run.
  const [svg] = await Promise.all([page.waitForEvent("download"), panel.getByTitle("Download SVG").click()]);
  const svgText = Buffer.concat(await (await svg.createReadStream()).toArray()).toString();
  expect(svgText).toContain("<svg");
  const strokes = [...svgText.matchAll(/<polyline points="[^"]+" stroke="([^"]+)"[^>]*><title>([^<]*)<\/title>/g)].map((m) => ({ stroke: m[1], name: m[2] }));
  expect(strokes.map((s) => s.name).sort()).toEqual(shownRuns.map((r) => r.name).sort());
  for (const s of strokes) expect(rgb(s.stroke), `SVG stroke of ${s.name}`).toEqual(colors.get(s.name));
});

type RunDetailApi = ApiRun & { summary: Record<string, unknown> };

/** Whether lower is better for a metric, as the README's compare view
 * colors it (losses, errors, times). */
const lowerIsBetter = (k: string) => /loss|err|error|perplexity|ppl|mse|mae|rmse|nll|wer|cer|time|latency|_ms$|\/ms$|regret|cost/i.test(k);

/** Checks the compare page's metrics table against the API: each run's
 * last value, and for the others the delta against `base` (sign, size,
 * percentage of the baseline's magnitude, better or worse). */
async function expectDeltas(page: Page, ids: string[], base: string, min: number) {
  const details = await Promise.all(ids.map((id) => apiGet<RunDetailApi>(`/api/v1/runs/${id}`)));
  await expect(page.locator("[data-testid=metrics-diff] thead th.base-col")).toContainText(details.find((d) => d.id === base)?.name ?? "?");
  const heads = await page.locator("[data-testid=metrics-diff] thead th").allTextContents();
  const col = details.map((d) => heads.findIndex((h) => h.includes(d.name)));
  expect(col.every((c) => c > 0), `a column per run: ${heads.join(" | ")}`).toBe(true);
  const rows = await page.locator("[data-testid=metrics-diff] tbody tr").evaluateAll((trs) =>
    trs.map((tr) => ({
      key: (tr.querySelector("td.key")?.childNodes[0]?.textContent ?? "").trim(),
      summary: !!tr.querySelector("td.key .badge"),
      cells: [...tr.querySelectorAll("td")].map((td) => ({
        value: td.querySelector("div:not(.delta)")?.textContent ?? td.textContent ?? "",
        delta: td.querySelector(".delta")?.textContent ?? null,
        cls: td.querySelector(".delta")?.className ?? "",
      })),
    })),
  );
  const value = (d: RunDetailApi, key: string, summary: boolean): number | undefined => {
    const v = summary ? d.summary[key] : d.metrics[key]?.last;
    return typeof v === "number" ? v : undefined;
  };
  const b = details.find((d) => d.id === base);
  if (!b) throw new Error("no baseline");
  let checked = 0;
  for (const row of rows) {
    const bv = value(b, row.key, row.summary);
    for (const [i, d] of details.entries()) {
      const cell = row.cells[col[i]];
      const v = value(d, row.key, row.summary);
      const what = `${row.key} of ${d.name} against ${b.name}`;
      if (v === undefined) {
        expect(cell.value.trim(), what).toBe("—");
        continue;
      }
      expect(shown(cell.value), `${what}: value "${cell.value}" vs ${v}`).toBeCloseToSig(v);
      if (d.id === base || bv === undefined) {
        expect(cell.delta, `${what}: no delta`).toBeNull();
        continue;
      }
      const delta = v - bv;
      if (delta === 0) {
        expect(cell.delta, what).toBe("=");
        continue;
      }
      const m = /^([+−])(\S+)\s*(?:\(([+−-]?[\d.]+)%\))?$/.exec(cell.delta?.trim() ?? "");
      expect(m, `${what}: delta "${cell.delta}"`).not.toBeNull();
      if (!m) continue;
      expect(m[1], `${what}: sign`).toBe(delta > 0 ? "+" : "−");
      expect(shown(m[2]), `${what}: |delta| "${m[2]}" vs ${Math.abs(delta)}`).toBeCloseToSig(Math.abs(delta));
      if (bv !== 0) {
        const pct = (delta / Math.abs(bv)) * 100;
        const digits = Math.abs(pct) >= 100 ? 0 : Math.abs(pct) >= 10 ? 1 : 2;
        expect(Math.abs(Number(m[3]?.replace("−", "-")) - pct), `${what}: ${m[3]}% vs ${pct}%`).toBeLessThanOrEqual(0.5 * Math.pow(10, -digits) + 1e-9);
      }
      expect(cell.cls, `${what}: better or worse`).toContain((delta > 0) !== lowerIsBetter(row.key) ? "better" : "worse");
      checked++;
    }
  }
  expect(checked, "deltas checked").toBeGreaterThanOrEqual(min);
}

test("charts: hovering lists each run's value at the nearest step, and a dot on each curve marks it", async ({ page }) => {
  const grid = (await runs("spirals", { filter: 'tags contains "grid"', limit: 100 })).runs;
  await page.goto(`/p/spirals/charts?runs=${grid.map((r) => r.id).join(",")}`);
  await waitForPoints(page, "val/acc");
  const d = await drawn(page, "val/acc");
  if (!d) throw new Error("val/acc was not drawn");
  const over = page.locator('.chart-panel[data-metric="val/acc"] .u-over');
  const box = await over.boundingBox();
  if (!box) throw new Error("no plotting area");
  await over.hover({ position: { x: box.width * 0.4, y: box.height / 2 } });
  const tip = page.locator('.chart-panel[data-metric="val/acc"] .chart-tip');
  await expect(tip).toBeVisible();
  const step = Number((await tip.locator(".tip-head").textContent())?.replace(/[^0-9.]/g, ""));
  // Each listed run's value is its point nearest that step.
  const rows = await tip.locator(".tip-row").evaluateAll((els) => els.map((e) => ({ name: e.querySelector(".tip-name")?.textContent ?? "", v: Number(e.querySelector(".num")?.firstChild?.textContent?.replace(/,/g, "")) })));
  expect(rows.length).toBe(Math.min(12, d.series.length));
  const nearestPoint = (pts: [number, number | null][]) => pts.reduce((best, p) => (Math.abs(p[0] - step) < Math.abs(best[0] - step) ? p : best), pts[0]);
  for (const r of rows) {
    const s = d.series.find((x) => x.label === r.name);
    const y = s ? nearestPoint(s.points)[1] : null;
    expect(y, r.name).not.toBeNull();
    expect(close(r.v, y ?? NaN, 1e-3), `${r.name}: tooltip ${r.v}, nearest point ${y}`).toBe(true);
  }
  // The hover dots sit on those points.
  const dots = await over.locator(".u-cursor-pt").evaluateAll((els) => els.map((e) => e.getBoundingClientRect()).filter((b) => b.width > 0 && b.left > -5).map((b) => [b.left + b.width / 2, b.top + b.height / 2]));
  expect(dots.length).toBe(d.series.length);
  const dpr = await page.evaluate(() => devicePixelRatio);
  for (const s of d.series) {
    const [x, y] = nearestPoint(s.points);
    const [px, py] = pixelOf(d, x, y ?? NaN, false).map((v) => v / dpr);
    // pixelOf counts from the canvas; the hover layer starts at the plotting area.
    const at = [box.x + px - d.bbox.left / dpr, box.y + py - d.bbox.top / dpr];
    expect(dots.some(([dx, dy]) => Math.abs(dx - at[0]) <= 2 && Math.abs(dy - at[1]) <= 2), `${s.label}: a dot at ${at}`).toBe(true);
  }
  await page.mouse.move(0, 0);
  await expect(tip).toBeHidden();
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
  await expect(page.getByTestId("env-diff")).toBeVisible();

  // Every metric's last value and its delta against the baseline, absolute
  // and in %, computed here from the API; then again for another baseline.
  await expectDeltas(page, [a.id, b.id], a.id, 5);
  await page.locator("[data-testid=metrics-diff] thead th", { hasText: b.name }).getByRole("button", { name: "set as baseline" }).click();
  await expect(page).toHaveURL(new RegExp(`base=${b.id}`));
  await expectDeltas(page, [a.id, b.id], b.id, 5);
  await screenshots(page, "compare");

  // Three runs, the baseline in the middle, one without "acc" (shown as —).
  const trio = await Promise.all(["lr0.01-s0", "lr1.0-s1", "lr0.1-s2"].map((n) => runByName("seeds", n)));
  expect(trio[2].metrics["acc"]).toBeUndefined();
  await page.goto(`/p/seeds/compare?runs=${trio.map((r) => r.id).join(",")}&base=${trio[1].id}`);
  await expectDeltas(page, trio.map((r) => r.id), trio[1].id, 4);
});

test("parallel coordinates: one line per run; a brush selects the runs inside it", async ({ page }) => {
  const all = await runs("spirals", { limit: 1000 });
  const axes = ["config.lr", "config.model.hidden", "metrics.val/acc"];
  await page.goto(`/p/spirals/parallel?${axes.map((a) => `axis=${a}`).join("&")}`);
  const svg = page.getByTestId("parallel");
  await expect(svg).toHaveAttribute("data-lines", String(all.total));
  // Each run: one polyline through every axis it has a value on (a run
  // without val/acc, the live one, stops at the axis before), so exactly
  // as many lines as runs, and on each axis the heights are in the order
  // of the values.
  const val = (r: ApiRun, a: string): number | null => {
    const v = a.startsWith("metrics.") ? r.metrics[a.slice(8)]?.last : r.config[a.slice(7)];
    return typeof v === "number" && Number.isFinite(v) ? v : null;
  };
  const want = new Map(all.runs.map((r) => [r.id, axes.map((a) => val(r, a))]));
  expect([...want.values()].filter((vs) => vs.every((v) => v !== null)).length, "runs with every axis").toBeGreaterThanOrEqual(all.total - 1);
  const lines = await svg.locator("polyline.pc-line").evaluateAll((els) =>
    els.map((e) => ({ run: e.getAttribute("data-run") ?? "", points: (e.getAttribute("points") ?? "").trim().split(/\s+/).map((p) => p.split(",").map(Number)) })),
  );
  expect(lines.map((l) => l.run).sort(), "one line per run, every run").toEqual([...want.keys()].sort());
  const ys = new Map(lines.map((l) => [l.run, l.points]));
  for (const [id, vs] of want) {
    const pts = ys.get(id) ?? [];
    const have = vs.map((v, i) => (v === null ? -1 : i)).filter((i) => i >= 0);
    expect(pts.length, `points of ${id}'s line`).toBe(have.length);
  }
  for (const [i] of axes.entries()) {
    const on = [...want].filter(([, vs]) => vs[i] !== null).map(([id, vs]) => ({ id, v: vs[i] as number, y: ys.get(id)?.[i]?.[1] ?? NaN }));
    for (const p of on) {
      for (const q of on) {
        const what = `${axes[i]}: ${p.id} (${p.v}, y ${p.y}) against ${q.id} (${q.v}, y ${q.y})`;
        if (p.v > q.v) expect(p.y, what).toBeLessThan(q.y);
        else if (p.v === q.v) expect(p.y, what).toBeCloseTo(q.y, 1);
      }
    }
  }
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
  await expect(page.locator(".empty-title")).toHaveText("No run zzzzzzzz");
  await page.goto("/p/spirals/compare");
  await expect(page.locator(".empty-title")).toContainText("two or more runs");
  await screenshots(page, "compare-empty");
});
