// What a new user tripped over on the dashboard (issue 10), each checked by
// value against the API and by what the page drew: tick labels against the
// ticks' positions, axis titles on the canvas, how many runs the charts draw,
// the chart grid's rows, single values as values and bars, the summary
// cell, one color per run on every page, counts in words, the runs table's
// columns and pinned name, the parallel axes, compare's deltas, error states
// and the links the `mlflow` client prints. The project "sweep"
// (fixtures/sweep_runs.py) is an 18-run GridSearch-style sweep.
import type { Page } from "@playwright/test";
import type { RGB } from "./drawn";
import { countColor, decodePng, drawn, pixelOf, probe, rgb } from "./drawn";
import type { ApiRun } from "./helpers";
import { apiGet, chartDebug, expect, panelsSettled, runByName, runs, screenshots, serverUrl, shown, tableIds, test } from "./helpers";

/** The page's chart panels exist and have all drawn. */
async function settled(page: Page) {
  await expect(page.locator(".chart-panel").first()).toBeVisible();
  await panelsSettled(page);
}

type SweepRun = ApiRun & { summary: Record<string, unknown>; metrics: Record<string, { count: number; last: number | string; last_step: number; min: number; max: number }> };

async function sweep(): Promise<SweepRun[]> {
  return (await runs("sweep", { limit: 100 })).runs as SweepRun[];
}

/** Each uPlot axis of a panel: its ticks' values, the labels drawn at them,
 * and its title. */
async function axes(page: Page, metric: string) {
  return page.evaluate((m) => {
    type A = { _splits?: number[]; _values?: (string | null)[]; label?: string };
    const el = document.querySelector(`.chart-panel[data-metric="${CSS.escape(m)}"] .plot`) as (HTMLElement & { __uplot?: { axes: A[] } }) | null;
    return (el?.__uplot?.axes ?? []).map((a) => ({ splits: [...(a._splits ?? [])], values: [...(a._values ?? [])].map((v) => (v === null ? "" : String(v))), label: a.label ?? null }));
  }, metric);
}

/** Opaque pixels of a panel's canvas inside a rectangle (CSS pixels): where
 * something was drawn, and over how many distinct rows and columns. */
async function ink(page: Page, metric: string, r: { x0: number; x1: number; y0: number; y1: number }) {
  return page.evaluate(
    ({ m, r }) => {
      const el = document.querySelector(`.chart-panel[data-metric="${CSS.escape(m)}"] .plot`) as (HTMLElement & { __uplot?: { ctx: CanvasRenderingContext2D } }) | null;
      const ctx = el?.__uplot?.ctx;
      if (!ctx) return { pixels: 0, rows: 0, cols: 0 };
      const dpr = devicePixelRatio || 1;
      const { width, height } = ctx.canvas;
      const x0 = Math.max(0, Math.round(r.x0 * dpr));
      const x1 = Math.min(width, Math.round(r.x1 * dpr));
      const y0 = Math.max(0, Math.round((r.y0 < 0 ? height / dpr + r.y0 : r.y0) * dpr));
      const y1 = Math.min(height, Math.round((r.y1 <= 0 ? height / dpr + r.y1 : r.y1) * dpr));
      const img = ctx.getImageData(0, 0, width, height).data;
      let pixels = 0;
      const rows = new Set<number>();
      const cols = new Set<number>();
      for (let y = y0; y < y1; y++) {
        for (let x = x0; x < x1; x++) {
          if (img[(y * width + x) * 4 + 3] > 100) {
            pixels++;
            rows.add(y);
            cols.add(x);
          }
        }
      }
      return { pixels, rows: rows.size / dpr, cols: cols.size / dpr };
    },
    { m: metric, r },
  );
}

test("chart ticks are labelled with the values they stand at; axes have titles drawn on the canvas", async ({ page }) => {
  await page.goto("/p/sweep/charts");
  await settled(page);
  const metrics = ["train/loss", "val/acc", "val/loss"];
  let quarter = false;
  for (const m of metrics) {
    const [x, y] = await axes(page, m);
    for (const [name, a] of [["x", x], ["y", y]] as const) {
      const ticks = a.splits.map((v, i) => ({ v, label: a.values[i] })).filter((t) => t.label !== "");
      expect(ticks.length, `${m}: ${name} ticks`).toBeGreaterThanOrEqual(3);
      const step = Math.min(...ticks.slice(1).map((t, i) => Math.abs(t.v - ticks[i].v)));
      for (const t of ticks) expect(Math.abs(shown(t.label) - t.v), `${m}: the ${name} tick at ${t.v} is labelled "${t.label}"`).toBeLessThanOrEqual(step * 1e-6);
      // A linear axis writes its labels with one number of decimals.
      const decimals = new Set(ticks.map((t) => (t.label.split(".")[1] ?? "").length));
      expect(decimals.size, `${m}: ${name} labels ${ticks.map((t) => t.label).join(", ")}`).toBe(1);
      if (name === "y" && Math.abs(step - 0.25) < 1e-9) quarter = true;
    }
    expect(x.label, `${m}: the x axis's title`).toBe("Step");
    expect(y.label, `${m}: the y axis's title`).toBe(m);
  }
  // The sweep's train/loss falls from 1.4 to 0.1: ticks 0.25 apart, which
  // one decimal cannot write.
  expect(quarter, "a y axis with ticks 0.25 apart").toBe(true);
  const [, ly] = await axes(page, "train/loss");
  expect(ly.values.filter(Boolean)).toEqual(["0.25", "0.50", "0.75", "1.00", "1.25"]);

  // The titles are on the canvas: the rotated y title in the strip left of
  // the tick labels, the x title in the bottom rows.
  const d = await drawn(page, "train/loss");
  if (!d) throw new Error("no chart");
  const dpr = await page.evaluate(() => devicePixelRatio);
  const top = d.bbox.top / dpr;
  const plotH = d.bbox.height / dpr;
  const yTitle = await ink(page, "train/loss", { x0: 0, x1: 10, y0: top, y1: top + plotH });
  expect(yTitle.rows, "rows of the rotated y title").toBeGreaterThan(25);
  const xTitle = await ink(page, "train/loss", { x0: (d.bbox.left / dpr) + (d.bbox.width / dpr) * 0.4, x1: (d.bbox.left / dpr) + (d.bbox.width / dpr) * 0.6, y0: -14, y1: 0 });
  expect(xTitle.cols, "columns of the x title").toBeGreaterThan(15);

  // The x title follows the axis in use.
  await page.goto("/p/sweep/charts?x=rel");
  await settled(page);
  expect((await axes(page, "train/loss"))[0].label).toBe("Relative time");
  await page.goto("/p/sweep/charts?logy=1");
  await settled(page);
  for (const m of metrics) {
    const [, y] = await axes(page, m);
    for (const [i, label] of y.values.entries()) if (label) expect(shown(label), `${m}: log tick at ${y.splits[i]}`).toBeCloseTo(y.splits[i], 9);
  }
});

test("the charts say which runs they draw: the 10 most recent of the sweep's 18, or all of a small project", async ({ page }) => {
  const all = await sweep();
  expect(all.length).toBe(18);
  const recent = all.slice(0, 10); // newest first, as the API lists them
  for (const url of ["/p/sweep/charts", "/p/sweep"]) {
    await page.goto(url);
    await expect(page.getByTestId("charts-scope")).toContainText("10 most recent of 18 runs drawn");
    await expect(page.getByTestId("legend").locator(".legend-item")).toHaveText(recent.map((r) => r.name));
    await expect.poll(async () => Object.keys((await chartDebug(page, "val/acc"))?.perRun ?? {}).sort()).toEqual(recent.map((r) => r.id).sort());
  }
  await page.goto("/p/sweep/charts");
  await page.getByTestId("charts-scope").getByRole("link", { name: "Choose runs in the table" }).click();
  await expect(page).toHaveURL(/\/p\/sweep$/);

  const spirals = await runs("spirals", { limit: 100 });
  expect(spirals.total).toBeLessThanOrEqual(10);
  await page.goto("/p/spirals/charts");
  await expect(page.getByTestId("charts-scope")).toContainText(`All ${spirals.total} runs drawn`);
  // Selected runs are named as such instead.
  await page.goto(`/p/sweep/charts?runs=${all[0].id},${all[1].id}`);
  await expect(page.locator(".page-head")).toContainText("2 selected runs");
  await expect(page.getByTestId("charts-scope")).toHaveCount(0);
});

test("at 1440 px every row of chart panels spans the grid, and each panel draws across its width", async ({ page }) => {
  expect(page.viewportSize()?.width).toBe(1440);
  for (const url of ["/p/spirals/charts", "/p/sweep/charts", "/p/spirals/run/" + (await runByName("spirals", "live-run")).id]) {
    await page.goto(url);
    await settled(page);
    const sections = await page.locator(".chart-section .panels").evaluateAll((els) =>
      els.map((el) => {
        const box = el.getBoundingClientRect();
        const panels = [...el.children].map((p) => {
          const b = p.getBoundingClientRect();
          const canvas = p.querySelector("canvas");
          return { top: Math.round(b.top), left: b.left, width: b.width, canvas: canvas ? canvas.getBoundingClientRect().width : null, metric: (p as HTMLElement).dataset.metric ?? "" };
        });
        return { section: el.closest<HTMLElement>(".chart-section")?.dataset.section ?? "", left: box.left, width: box.width, panels };
      }),
    );
    expect(sections.length, `${url}: sections`).toBeGreaterThan(0);
    for (const s of sections) {
      const rows = new Map<number, typeof s.panels>();
      for (const p of s.panels) rows.set(p.top, [...(rows.get(p.top) ?? []), p]);
      for (const [top, row] of rows) {
        const right = Math.max(...row.map((p) => p.left + p.width));
        const left = Math.min(...row.map((p) => p.left));
        expect((right - left) / s.width, `${url} ${s.section}: the row at ${top} (${row.map((p) => p.metric).join(", ")}) spans the grid`).toBeGreaterThan(0.98);
        for (const p of row) {
          if (p.canvas === null) continue;
          expect(p.canvas, `${url} ${p.metric}: the canvas fills its panel`).toBeGreaterThan(p.width - 24);
        }
      }
    }
  }
  await page.goto("/p/spirals/charts");
  await screenshots(page, "charts-grid");
});

test("a metric logged once is a value on the run page and bars across runs, not a one-point curve", async ({ page }) => {
  const all = await sweep();
  const r = all.find((x) => x.name === "sweep-03");
  if (!r) throw new Error("no sweep-03");
  expect(r.metrics["test/acc"].count).toBe(1);
  await page.goto(`/p/sweep/run/${r.id}`);
  const tile = page.getByTestId("values-card").locator('.value-tile[data-metric="test/acc"]');
  await expect(tile).toBeVisible();
  expect(shown(await tile.locator(".value-num").innerText())).toBeCloseToSig(Number(r.metrics["test/acc"].last));
  await expect(tile.locator(".value-step")).toHaveText(`step ${r.metrics["test/acc"].last_step}`);
  await settled(page);
  expect(await drawn(page, "test/acc"), "no line chart of one point").toBeNull();
  expect(await drawn(page, "val/acc"), "curves are still charts").not.toBeNull();
  await expect(page.getByTestId("chart-controls"), "curves keep their axis controls").toHaveCount(1);
  await screenshots(page, "run-logged-once");

  // Across the 10 charted runs: one bar per run, as long as its value.
  await page.goto("/p/sweep/charts");
  await settled(page);
  expect(await drawn(page, "test/acc")).toBeNull();
  const panel = page.locator('[data-testid=bar-panel][data-metric="test/acc"]');
  await expect(panel.locator(".bar-row")).toHaveCount(10);
  await panel.scrollIntoViewIfNeeded();
  const bars = await panel.locator(".bar-row").evaluateAll((els) =>
    els.map((e) => {
      const t = (e.querySelector(".bar-track") as HTMLElement).getBoundingClientRect();
      const b = (e.querySelector(".bar") as HTMLElement).getBoundingClientRect();
      const striped = (e.querySelector(".bar") as HTMLElement).classList.contains("dashed");
      return { run: (e as HTMLElement).dataset.run ?? "", label: e.querySelector(".bar-val")?.textContent ?? "", striped, track: { x: t.left, w: t.width }, bar: { x: b.left, y: b.top, w: b.width, h: b.height } };
    }),
  );
  const recent = all.slice(0, 10);
  expect(bars.map((b) => b.run)).toEqual(recent.map((x) => x.id));
  const colors = await legendColors(page);
  const values = new Map(recent.map((x) => [x.id, Number(x.metrics["test/acc"].last)]));
  const hi = Math.max(...values.values());
  const shot = decodePng(await page.screenshot({ fullPage: false }));
  for (const b of bars) {
    const v = values.get(b.run) ?? NaN;
    expect(shown(b.label), `${b.run}: label`).toBeCloseToSig(v);
    expect(Math.abs(b.bar.x - b.track.x), "bars start at zero").toBeLessThan(1);
    expect(Math.abs(b.bar.w - (b.track.w * v) / hi), `${b.run}: bar length for ${v}`).toBeLessThan(1.5);
    // Its pixels are the run's legend color.
    const name = recent.find((x) => x.id === b.run)?.name ?? "";
    const want = colors.get(name);
    if (!want) throw new Error(`${name} not in the legend`);
    const clip = crop(shot, b.bar.x + 2, b.bar.y + 2, b.bar.w - 4, b.bar.h - 4);
    // A run drawn dashed (its color shared) has a striped bar, like its swatch.
    expect(countColor(clip, want, 12) / (clip.width * clip.height), `${name}: the bar's pixels in its color`).toBeGreaterThan(b.striped ? 0.7 : 0.9);
    const dashedInLegend = await page.locator("[data-testid=legend] .legend-item", { hasText: new RegExp(`^${name}$`) }).locator(".swatch.dashed").count();
    expect(b.striped, `${name}: striped bar as its legend swatch`).toBe(dashedInLegend === 1);
  }
  await screenshots(page, "charts-logged-once");
});

test("run page: a summary value sits under Last, not under Points", async ({ page }) => {
  const r = (await sweep()).find((x) => x.name === "sweep-05");
  if (!r) throw new Error("no sweep-05");
  const best = r.summary["best_val_acc"] as number;
  await page.goto(`/p/sweep/run/${r.id}`);
  const table = page.getByTestId("summary-table");
  const row = table.locator("tbody tr", { has: page.locator("td.key", { hasText: /^best_val_acc/ }) });
  await expect(row).toBeVisible();
  const heads = await table.locator("thead th").evaluateAll((ths) => ths.map((t) => ({ text: t.textContent ?? "", box: t.getBoundingClientRect().toJSON() as DOMRect })));
  const col = (name: string) => heads.find((h) => h.text === name)?.box ?? null;
  const last = col("Last");
  const points = col("Points");
  if (!last || !points) throw new Error(`headers: ${heads.map((h) => h.text).join(", ")}`);
  const cells = await row.locator("td").evaluateAll((tds) => tds.map((t) => ({ text: (t.textContent ?? "").trim(), box: t.getBoundingClientRect().toJSON() as DOMRect })));
  const value = cells.find((c) => c.text !== "" && !c.text.startsWith("best_val_acc"));
  if (!value) throw new Error("no value cell");
  expect(shown(value.text)).toBeCloseToSig(best);
  // The value's cell is the Last column's, and nothing stands under Points.
  expect(Math.abs(value.box.left - last.left)).toBeLessThan(1);
  expect(Math.abs(value.box.width - last.width)).toBeLessThan(1);
  const underPoints = cells.filter((c) => c.box.left < points.right && c.box.right > points.left + 1);
  expect(underPoints.map((c) => c.text)).toEqual([""]);
  // And the metric rows keep their point counts under Points.
  const valAcc = table.locator("tbody tr", { has: page.locator("td.key", { hasText: /^val\/acc$/ }) });
  await expect(valAcc.locator("td").nth(4)).toHaveText(String(r.metrics["val/acc"].count));
});

/** The legend's colors by run name. */
async function legendColors(page: Page): Promise<Map<string, RGB>> {
  const items = await page.locator("[data-testid=legend] .legend-item").evaluateAll((els) =>
    els.map((e) => ({ name: e.textContent ?? "", color: getComputedStyle(e.querySelector(".swatch") as Element).backgroundColor })),
  );
  return new Map(items.map((i) => [i.name, rgb(i.color)]));
}

/** A rectangle (CSS pixels) of a screenshot. */
function crop(img: { width: number; height: number; rgba: Uint8Array }, x: number, y: number, w: number, h: number) {
  const x0 = Math.max(0, Math.round(x));
  const y0 = Math.max(0, Math.round(y));
  const cw = Math.max(1, Math.min(img.width - x0, Math.round(w)));
  const ch = Math.max(1, Math.min(img.height - y0, Math.round(h)));
  const rgba = new Uint8Array(cw * ch * 4);
  for (let j = 0; j < ch; j++) rgba.set(img.rgba.subarray(((y0 + j) * img.width + x0) * 4, ((y0 + j) * img.width + x0 + cw) * 4), j * cw * 4);
  return { width: cw, height: ch, rgba };
}

test("each run keeps one color on its page, the charts, the runs page, compare, scatter and parallel", async ({ page }) => {
  test.setTimeout(150_000);
  const all = await sweep();
  const shown10 = all.slice(0, 10); // the runs the charts draw by default
  // The charts page: each run's legend color is its curve's stroke.
  await page.goto("/p/sweep/charts");
  await expect.poll(async () => (await chartDebug(page, "val/loss"))?.runs ?? 0).toBe(10);
  const legend = await legendColors(page);
  expect([...legend.keys()].sort()).toEqual(shown10.map((r) => r.name).sort());
  const strokes = new Map((await drawn(page, "val/loss"))?.series.map((s) => [s.label, rgb(s.stroke)]) ?? []);
  expect(strokes).toEqual(legend);

  // Each run's own page: the one curve's stroke, and the canvas pixels on
  // its points, in the color the charts page gave it.
  for (const r of shown10) {
    await page.goto(`/p/sweep/run/${r.id}`);
    await expect.poll(async () => (await chartDebug(page, "val/loss"))?.points ?? 0).toBe(r.metrics["val/loss"].count);
    const d = await drawn(page, "val/loss");
    if (!d) throw new Error("no chart");
    const own = rgb(d.series[0].stroke);
    expect(own, `${r.name}: its color on its page and on the charts page`).toEqual(legend.get(r.name));
    const pts = d.series[0].points.map(([x, y]) => pixelOf(d, x, y ?? NaN, false));
    const hits = await probe(page, "val/loss", pts, own);
    expect(hits.filter(Boolean).length / pts.length, `${r.name}: its curve drawn in its color on its page`).toBeGreaterThan(0.9);
  }

  // The runs page's charts, compare beside other runs, scatter and parallel
  // colored by run.
  await page.goto("/p/sweep");
  await expect(page.getByTestId("legend").locator(".legend-item")).toHaveCount(10);
  expect(await legendColors(page)).toEqual(legend);
  await page.goto(`/p/sweep/compare?runs=${shown10.map((x) => x.id).join(",")}`);
  await expect(page.locator(".compare-run")).toHaveCount(10);
  const swatches = await page.locator(".compare-run").evaluateAll((els) =>
    els.map((e) => ({ name: e.querySelector("a")?.textContent ?? "", color: getComputedStyle(e.querySelector(".swatch") as Element).backgroundColor })),
  );
  for (const sw of swatches) expect(rgb(sw.color), `compare: ${sw.name}`).toEqual(legend.get(sw.name));
  await page.goto("/p/sweep/scatter?sx=config.learning_rate&sy=metrics.val/acc&sc=run&xlog=1");
  await expect(page.locator("circle.pt")).toHaveCount(all.length);
  for (const r of shown10) {
    const fill = await page.locator(`circle.pt[data-run="${r.id}"]`).evaluate((e) => getComputedStyle(e).fill);
    expect(rgb(fill), `scatter: ${r.name}`).toEqual(legend.get(r.name));
  }
  await page.goto("/p/sweep/parallel?axis=config.learning_rate&axis=metrics.val/acc&color=run");
  await expect(page.getByTestId("parallel")).toHaveAttribute("data-lines", String(all.length));
  for (const r of shown10) {
    const line = await page.locator(`polyline.pc-line[data-run="${r.id}"]`).first().getAttribute("stroke");
    expect(line && rgb(line), `parallel: ${r.name}`).toEqual(legend.get(r.name));
  }
  await screenshots(page, "parallel-by-run");

  // The bars of the single-valued metric, in pixels.
  await page.goto("/p/sweep/charts");
  const panel = page.locator('[data-testid=bar-panel][data-metric="test/acc"]');
  await expect(panel.locator(".bar-row")).toHaveCount(10);
  await panel.scrollIntoViewIfNeeded();
  const shot = decodePng(await page.screenshot());
  for (const r of shown10) {
    const box = await panel.locator(`.bar-row[data-run="${r.id}"] .bar`).boundingBox();
    if (!box) throw new Error("no bar");
    const img = crop(shot, box.x + 2, box.y + 2, box.width - 4, box.height - 4);
    const striped = await panel.locator(`.bar-row[data-run="${r.id}"] .bar.dashed`).count();
    expect(countColor(img, legend.get(r.name) ?? [0, 0, 0], 12) / (img.width * img.height), `${r.name}: its bar's pixels`).toBeGreaterThan(striped ? 0.7 : 0.9);
  }
  // The run page shows the color beside the name.
  await page.goto(`/p/sweep/run/${shown10[0].id}`);
  const swatch = await page.locator(".run-swatch").evaluate((e) => getComputedStyle(e).backgroundColor);
  expect(rgb(swatch)).toEqual(legend.get(shown10[0].name));
});

test("a crowded legend lists its first runs and the hidden ones, and the rest on request", async ({ page }) => {
  const some = (await runs("bulk", { limit: 40 })).runs;
  const hidden = some[30];
  await page.goto(`/p/bulk/charts?runs=${some.map((r) => r.id).join(",")}&hide=${hidden.id}`);
  const legend = page.getByTestId("legend");
  const items = legend.locator(".legend-item:not(.legend-more)");
  await expect(items).toHaveText([...some.slice(0, 16), hidden].map((r) => r.name));
  await expect(legend.locator(".legend-item.off")).toHaveText(hidden.name);
  await expect(page.getByTestId("legend-more")).toHaveText("23 more runs");
  await screenshots(page, "charts-crowded-legend");
  await page.getByTestId("legend-more").click();
  await expect(items).toHaveText(some.map((r) => r.name));
  await expect(page.getByTestId("legend-more")).toHaveCount(0);
});

test("counts read as words: one project, one run, one key", async ({ page }) => {
  // A store with one project: the API's answer, cut to it.
  const { projects } = await apiGet<{ projects: { name: string; runs: number }[] }>("/api/v1/projects");
  const code = projects.find((p) => p.name === "code");
  expect(code?.runs).toBe(1);
  await page.route("**/api/v1/projects", async (route) => {
    const res = await route.fetch();
    const body = (await res.json()) as { projects: { name: string }[] };
    await route.fulfill({ response: res, json: { projects: body.projects.filter((p) => p.name === "code") } });
  });
  await page.goto("/");
  await expect(page.getByTestId("project-count")).toHaveText("1 project");
  const card = page.locator('.project-card[data-project="code"]');
  await expect(card.locator(".stat").first()).toHaveText("1");
  await expect(card.locator(".stat-label").first()).toHaveText("run");
  await page.goto("/p/code");
  await page.getByTestId("project-switcher").click();
  await expect(page.locator(".switcher-pop .pop-item", { hasText: "code" })).toContainText("1 run");
  await page.unroute("**/api/v1/projects");

  // The code project's run: one config key, one metric.
  const run = (await runs("code")).runs[0];
  expect(Object.keys(run.config)).toEqual(["lr"]);
  await page.goto(`/p/code/run/${run.id}`);
  await expect(page.locator("section.card", { has: page.locator("h2", { hasText: /^Config$/ }) }).locator(".card-right")).toHaveText("1 key");
  await expect(page.locator("section.card", { has: page.locator("h2", { hasText: /^Summary$/ }) }).locator(".card-right")).toHaveText("1 metric");
  await page.goto("/p/code/charts");
  await expect(page.getByTestId("charts-scope")).toContainText("The only run drawn");
  await page.goto(`/p/code/parallel`);
  await expect(page.locator(".page-head")).toContainText("1 run");
  for (const url of ["/", "/p/code", `/p/code/run/${run.id}`, "/p/code/charts", "/p/code/parallel", "/p/code/scatter"]) {
    await page.goto(url);
    await page.waitForLoadState("networkidle");
    const text = await page.locator("body").innerText();
    expect(text, `${url}: a plural after 1`).not.toMatch(/(^|[^\d.,])1 (projects|runs|keys|metrics|packages|selected runs|identical keys)\b/m);
  }
});

/** Config keys whose values differ among `rs` (a key some lack differs). */
function varying(rs: ApiRun[]): string[] {
  const keys = new Set(rs.flatMap((r) => Object.keys(r.config)));
  return [...keys].filter((k) => rs.some((r) => JSON.stringify(r.config[k] ?? null) !== JSON.stringify(rs[0].config[k] ?? null))).sort();
}

async function headerCols(page: Page): Promise<string[]> {
  return page.locator(".thead .th[data-col]").evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.col ?? ""));
}

test("runs table: default columns are the config keys that vary among the shown runs and the headline metrics, and follow the filter", async ({ page }) => {
  const all = await sweep();
  const vary = varying(all);
  expect(vary).toEqual(["learning_rate", "max_depth", "n_estimators", "seed"]);
  await page.goto("/p/sweep");
  await expect.poll(() => tableIds(page)).toEqual(all.map((r) => r.id));
  let cols = await headerCols(page);
  expect(cols.filter((c) => c.startsWith("config.")).map((c) => c.slice(7)).sort(), "config columns").toEqual(vary);
  for (const k of ["bootstrap", "ccp_alpha", "class_weight", "criterion"]) expect(cols, `constant ${k}`).not.toContain(`config.${k}`);
  expect(cols.slice(0, 2)).toEqual(["name", "status"]);
  const metricCols = cols.filter((c) => c.startsWith("metrics."));
  expect(metricCols).toContain("metrics.val/acc");
  expect(metricCols).toContain("metrics.val/loss");
  // The cells hold the runs' values.
  for (const r of all.slice(0, 5)) {
    const row = page.locator(`.tr[data-run="${r.id}"]`);
    await expect(row.locator('[data-col="config.max_depth"]')).toHaveText(String(r.config.max_depth));
    expect(shown(await row.locator('[data-col="metrics.val/acc"]').innerText())).toBeCloseToSig(Number(r.metrics["val/acc"].last));
  }
  // The headline metrics are on screen without scrolling, beside the name.
  const scroller = await page.getByTestId("runs-scroller").boundingBox();
  for (const c of metricCols) {
    const b = await page.locator(`.thead .th[data-col="${c}"]`).boundingBox();
    expect(b && scroller && b.x + b.width <= scroller.x + scroller.width, `${c} is on screen`).toBe(true);
  }

  // A filter that leaves max_depth at one value: no max_depth column.
  const filter = "config.max_depth = 3";
  const some = (await runs("sweep", { filter, limit: 100 })).runs;
  expect(varying(some)).toEqual(["learning_rate", "n_estimators", "seed"]);
  await page.getByTestId("filter-input").fill(filter);
  await expect(page.getByTestId("runs-scroller")).toHaveAttribute("data-total", String(some.length));
  await expect.poll(async () => (await headerCols(page)).filter((c) => c.startsWith("config.")).map((c) => c.slice(7)).sort()).toEqual(varying(some));

  // Columns the user chose stay when the filter changes.
  const chosen = ["name", "config.bootstrap", "metrics.val/acc"];
  await page.goto(`/p/sweep?${chosen.map((c) => `col=${encodeURIComponent(c)}`).join("&")}`);
  await expect.poll(() => headerCols(page)).toEqual(chosen);
  await page.getByTestId("filter-input").fill(filter);
  await expect(page.getByTestId("runs-scroller")).toHaveAttribute("data-total", String(some.length));
  expect(await headerCols(page)).toEqual(chosen);
  await expect(page).toHaveURL(/col=config\.bootstrap/);
  await page.goto("/p/sweep");
  await screenshots(page, "runs-sweep");
});

test("runs table: with many columns the name stays pinned at the left while the rest scroll; a sorted column is brought into view", async ({ page }) => {
  const all = await sweep();
  const many = ["name", "status", "tags", "group", "created", "duration", "notes", "host", "id", "config.bootstrap", "config.ccp_alpha", "config.criterion", "config.max_features", "config.min_samples_leaf", "config.learning_rate", "metrics.val/acc", "config.seed"];
  await page.goto(`/p/sweep?${many.map((c) => `col=${encodeURIComponent(c)}`).join("&")}&charts=0`);
  await expect(page.getByTestId("runs-scroller")).toHaveAttribute("data-total", String(all.length));
  const scroller = page.getByTestId("runs-scroller");
  const dims = await scroller.evaluate((e) => ({ sw: e.scrollWidth, cw: e.clientWidth }));
  expect(dims.sw, "the table is wider than the page").toBeGreaterThan(dims.cw * 1.5);
  const first = all[0];
  const name = page.locator(`.tr[data-run="${first.id}"] [data-col="name"]`);
  const before = await name.boundingBox();
  await scroller.evaluate((e) => (e.scrollLeft = e.scrollWidth));
  await expect.poll(async () => (await page.locator('.thead [data-col="config.seed"]').boundingBox())?.x ?? 1e9).toBeLessThan(1440);
  const after = await name.boundingBox();
  const box = await scroller.boundingBox();
  if (!before || !after || !box) throw new Error("no boxes");
  expect(Math.abs(after.x - before.x), "the name did not move").toBeLessThan(1);
  expect(Math.abs(after.x - (box.x + 36)), "right of the selection box").toBeLessThan(2);
  // Nothing scrolled over it: the topmost element at its middle is the name.
  const top = await page.evaluate(([x, y]) => document.elementFromPoint(x, y)?.closest("[data-col]")?.getAttribute("data-col") ?? null, [after.x + after.width / 2, after.y + after.height / 2]);
  expect(top).toBe("name");
  await expect(name).toHaveText(first.name);
  const check = await page.locator(`.tr[data-run="${first.id}"] .td.check`).boundingBox();
  expect(check && Math.abs(check.x - box.x) < 2, "the selection box is pinned too").toBe(true);
  // Pixels: the pinned cell is painted opaque over the scrolled cells.
  const img = decodePng(await page.screenshot({ clip: { x: after.x + after.width - 8, y: after.y + 4, width: 6, height: after.height - 8 } }));
  const bg = rgb(await page.locator(`.tr[data-run="${first.id}"] [data-col="name"]`).evaluate((e) => getComputedStyle(e).backgroundColor));
  expect(countColor(img, bg, 6) / (img.width * img.height), "the name cell's own background").toBeGreaterThan(0.95);
  await screenshots(page, "runs-scrolled");

  // Sorted by a column at the far right, from the URL: it is brought into view.
  await page.goto(`/p/sweep?${many.map((c) => `col=${encodeURIComponent(c)}`).join("&")}&charts=0&sort=-config.seed`);
  const sorted = page.locator('.thead .th.sorted[data-col="config.seed"]');
  await expect(sorted).toBeVisible();
  await expect.poll(async () => {
    const b = await sorted.boundingBox();
    const s = await scroller.boundingBox();
    return !!b && !!s && b.x >= s.x + 36 && b.x + b.width <= s.x + s.width;
  }).toBe(true);
  const bySeed = (await runs("sweep", { sort: "-config.seed", limit: 100 })).runs.map((r) => r.id);
  await expect.poll(() => tableIds(page)).toEqual(bySeed);
});

test("parallel coordinates: labels above the lines on a backing, integer axes with whole ticks, a log axis for learning rates, both ends labelled", async ({ page }) => {
  const all = await sweep();
  const axesList = ["config.learning_rate", "config.seed", "config.n_estimators", "metrics.val/acc"];
  await page.goto(`/p/sweep/parallel?${axesList.map((a) => `axis=${a}`).join("&")}`);
  const svg = page.getByTestId("parallel");
  await expect(svg).toHaveAttribute("data-lines", String(all.length));
  const value = (r: SweepRun, a: string) => (a.startsWith("metrics.") ? Number(r.metrics[a.slice(8)].last) : Number(r.config[a.slice(7)]));
  const lines = await svg.locator("polyline.pc-line").evaluateAll((els) => els.map((e) => ({ run: e.getAttribute("data-run") ?? "", pts: (e.getAttribute("points") ?? "").trim().split(/\s+/).map((p) => p.split(",").map(Number)) })));
  const ys = new Map(lines.map((l) => [l.run, l.pts]));
  for (const [i, a] of axesList.entries()) {
    const ax = svg.locator(`g.pc-axis[data-axis="${a}"]`);
    const ticks = await ax.locator("g.pc-tick").evaluateAll((els) => els.map((e) => ({ t: Number(e.getAttribute("data-t")), label: e.getAttribute("data-label") ?? "" })));
    const vals = all.map((r) => value(r, a));
    const lo = Math.min(...vals);
    const hi = Math.max(...vals);
    // Both ends, labelled with the lowest and highest value.
    const bottom = ticks.find((t) => t.t === 0);
    const top = ticks.find((t) => t.t === 1);
    expect(shown(bottom?.label ?? ""), `${a}: bottom end`).toBeCloseToSig(lo);
    expect(shown(top?.label ?? ""), `${a}: top end`).toBeCloseToSig(hi);
    // Where each run's line crosses the axis, by the scale the test expects.
    const log = a === "config.learning_rate";
    const integer = vals.every((v) => Number.isInteger(v));
    const pos = (v: number) => (log ? (Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) : (v - lo) / (hi - lo));
    const yTop = ys.get(all[vals.indexOf(hi)].id)?.[i]?.[1] ?? NaN;
    const yBottom = ys.get(all[vals.indexOf(lo)].id)?.[i]?.[1] ?? NaN;
    for (const r of all) {
      const y = ys.get(r.id)?.[i]?.[1] ?? NaN;
      expect(Math.abs(y - (yBottom + (yTop - yBottom) * pos(value(r, a)))), `${a}: ${r.name} (${value(r, a)}) on a ${log ? "log" : "linear"} axis`).toBeLessThan(0.6);
    }
    // Ticks stand where their values belong on that scale.
    for (const t of ticks) expect(Math.abs(t.t - pos(shown(t.label))), `${a}: tick "${t.label}" at ${t.t}`).toBeLessThan(0.02);
    if (integer) for (const t of ticks) expect(Number.isInteger(shown(t.label)), `${a}: tick "${t.label}" is whole`).toBe(true);
    if (log) expect(ticks.filter((t) => !(t.t === 0 || t.t === 1)).map((t) => t.label), "decades between the ends").toEqual(["1e-4", "0.001"]);
  }
  // Labels are drawn after the lines (later in the SVG) and no line shows
  // through one: lines do pass behind some labels, and their pixels are the
  // backing's, not a line's.
  const labels = await svg.locator("g.pc-tick text.tick").evaluateAll((els) => els.map((e) => (e as SVGTextElement).getBoundingClientRect().toJSON() as DOMRect));
  const order = await svg.evaluate((s) => {
    const all = [...s.querySelectorAll("polyline.pc-line, text.tick")];
    const lastLine = Math.max(...all.map((e, i) => (e.matches("polyline") ? i : -1)));
    const firstLabel = all.findIndex((e) => e.matches("text.tick"));
    return { lastLine, firstLabel };
  });
  expect(order.firstLabel).toBeGreaterThan(order.lastLine);
  const svgBox = await svg.boundingBox();
  if (!svgBox) throw new Error("no svg");
  const crossed = labels.filter((b) =>
    lines.some((l) => l.pts.some((p, k) => k > 0 && segmentHits(l.pts[k - 1], p, { x: b.left - svgBox.x, y: b.top - svgBox.y, w: b.width, h: b.height }))),
  );
  expect(crossed.length, "labels some line passes behind").toBeGreaterThan(2);
  const shot = decodePng(await page.screenshot({ fullPage: false }));
  for (const b of crossed) {
    const img = crop(shot, b.left, b.top, b.width, b.height);
    let saturated = 0;
    for (let k = 0; k < img.rgba.length; k += 4) if (Math.max(img.rgba[k], img.rgba[k + 1], img.rgba[k + 2]) - Math.min(img.rgba[k], img.rgba[k + 1], img.rgba[k + 2]) > 60) saturated++;
    expect(saturated, `line pixels in the label at ${Math.round(b.left)},${Math.round(b.top)}`).toBe(0);
  }
  await screenshots(page, "parallel-sweep");
});

/** Whether segment a–b passes through rectangle r. */
function segmentHits(a: number[], b: number[], r: { x: number; y: number; w: number; h: number }): boolean {
  for (let s = 0; s <= 40; s++) {
    const x = a[0] + ((b[0] - a[0]) * s) / 40;
    const y = a[1] + ((b[1] - a[1]) * s) / 40;
    if (x > r.x + 1 && x < r.x + r.w - 1 && y > r.y + 1 && y < r.y + r.h - 1) return true;
  }
  return false;
}

test("compare: every delta in one notation, to 4 significant digits, next to its key", async ({ page }) => {
  const a = await runByName("sweep", "sweep-00");
  const b = await runByName("sweep", "sweep-01");
  const c = await runByName("sweep", "sweep-12");
  await page.goto(`/p/sweep/compare?runs=${a.id},${b.id},${c.id}&base=${a.id}`);
  const table = page.getByTestId("metrics-diff");
  const row = (k: string) => table.locator("tbody tr", { has: page.locator("td.key", { hasText: new RegExp(`^${k.replace("/", "\\/")}`) }) });
  // val/acc 0.98 → 0.971667 and val/loss 0.1 → 0.1001978.
  await expect(row("val/acc").locator("td").nth(2).locator(".delta")).toHaveText("−0.008333 (−0.85%)");
  await expect(row("val/loss").locator("td").nth(2).locator(".delta")).toHaveText("+0.0001978 (+0.20%)");
  const deltas = await table.locator(".delta").allTextContents();
  expect(deltas.length).toBeGreaterThan(6);
  for (const d of deltas) {
    if (d.trim() === "=") continue;
    const m = /^([+−])(\d[\d,]*(?:\.\d+)?) \(([+−])?(\d+(?:\.\d+)?)%\)$/.exec(d.trim());
    expect(m, `delta "${d}" in the one notation`).not.toBeNull();
    const digits = (m?.[2] ?? "").replace(/[,.]/g, "").replace(/^0+/, "");
    expect(digits.length, `delta "${d}": significant digits`).toBeLessThanOrEqual(4);
  }
  // Values next to their keys: the gap from a key to the baseline's value
  // is what the longest key needs, not the card's width.
  const geo = await table.locator("tbody tr").evaluateAll((trs) =>
    trs.map((tr) => {
      const key = tr.querySelector("td.key") as HTMLElement;
      const r = document.createRange();
      r.selectNodeContents(key);
      const keyBox = r.getBoundingClientRect();
      const val = tr.querySelectorAll("td")[1]?.querySelector(".num-val");
      const vr = document.createRange();
      if (val) vr.selectNodeContents(val);
      return { key: key.textContent ?? "", keyRight: keyBox.right, keyW: keyBox.width, valLeft: val ? vr.getBoundingClientRect().left : NaN };
    }),
  );
  const widest = Math.max(...geo.map((g) => g.keyW));
  for (const g of geo) expect(g.valLeft - g.keyRight, `${g.key}: the gap to its value`).toBeLessThanOrEqual(widest - g.keyW + 60);
  await screenshots(page, "compare-sweep");
});

test("errors: a bad filter is marked in the box with the server's message; a missing run says so and links back", async ({ page }) => {
  const bad = "config.lr >";
  const res = await fetch(`${serverUrl()}/api/v1/query/validate?filter=${encodeURIComponent(bad)}`);
  expect(res.status).toBe(400);
  const err = ((await res.json()) as { error: { message: string; column: number } }).error;
  expect(err.column).toBe(12);

  // Opened with the bad filter in the URL (a shared link).
  await page.goto(`/p/spirals?filter=${encodeURIComponent(bad)}`);
  const input = page.getByTestId("filter-input");
  await expect(page.getByTestId("filter-error")).toContainText(err.message);
  await expect(input).toHaveAttribute("aria-invalid", "true");
  await expect(page.getByText("Something went wrong")).toHaveCount(0);
  await expect(page.getByRole("button", { name: "Retry" })).toHaveCount(0);
  await expect(page.locator(".error-box")).toHaveCount(0);
  await expect(page.getByTestId("table-note")).toContainText("filter has an error");
  // The box's border is drawn red (the theme's --red), in pixels too.
  const red = rgb(await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue("--red").trim()));
  expect(rgb(await input.evaluate((e) => getComputedStyle(e).borderLeftColor))).toEqual(red);
  const box = await input.boundingBox();
  if (!box) throw new Error("no input");
  const edge = decodePng(await page.screenshot({ clip: { x: box.x, y: box.y + box.height / 2 - 4, width: 2, height: 8 } }));
  expect(countColor(edge, red, 60), "red pixels on the box's left edge").toBeGreaterThan(4);
  // The caret stands under the column the server named.
  const caret = await page.locator(".caret-line").evaluate((e) => {
    const r = document.createRange();
    const t = e.lastChild as Text;
    r.setStart(t, t.length - 1);
    r.setEnd(t, t.length);
    return r.getBoundingClientRect().left;
  });
  const col = await input.evaluate((e, c) => {
    const cs = getComputedStyle(e);
    const ctx = document.createElement("canvas").getContext("2d");
    if (!ctx) return NaN;
    ctx.font = `${cs.fontSize} ${cs.fontFamily}`;
    return e.getBoundingClientRect().left + parseFloat(cs.paddingLeft) + parseFloat(cs.borderLeftWidth) + ctx.measureText((e as HTMLInputElement).value.slice(0, c - 1)).width;
  }, err.column);
  expect(Math.abs(caret - col), "the caret under column 12").toBeLessThan(4);
  await screenshots(page, "runs-bad-filter");

  // Typed: marked invalid, then valid once fixed.
  await page.goto("/p/spirals");
  await input.fill("config.lr >");
  await expect(input).toHaveAttribute("aria-invalid", "true");
  await input.fill("config.lr > 0.5");
  await expect(input).toHaveAttribute("aria-invalid", "false");
  await expect(page).toHaveURL(/filter=config\.lr/);

  // A run that does not exist: its id, a way back, nothing to retry.
  await page.goto("/p/spirals/run/zzzzzzzz");
  await expect(page.locator(".empty-title")).toHaveText("No run zzzzzzzz");
  await expect(page.getByRole("button", { name: "Retry" })).toHaveCount(0);
  await expect(page.locator(".error-box")).toHaveCount(0);
  await page.getByTestId("back-to-project").click();
  await expect(page).toHaveURL(/\/p\/spirals$/);
  await expect(page.getByTestId("runs-scroller")).toHaveAttribute("data-total", String((await runs("spirals")).total));
});

test("the links the mlflow client prints open the run's page and the experiment's runs", async ({ page }) => {
  const { projects } = await apiGet<{ projects: { id: number; name: string; runs: number }[] }>("/api/v1/projects");
  const sweepProject = projects.find((p) => p.name === "sweep");
  if (!sweepProject) throw new Error("no sweep project");
  const r = await runByName("sweep", "sweep-07");

  await page.goto(`/#/experiments/${sweepProject.id}/runs/${r.id}`);
  await expect(page).toHaveURL(new RegExp(`/p/sweep/run/${r.id}$`));
  await expect(page.locator("h1")).toHaveText(r.name);
  expect(await page.evaluate(() => location.hash)).toBe("");
  // MLflow's own sub-pages of a run land on the run too.
  await page.goto(`/#/experiments/${sweepProject.id}/runs/${r.id}/artifacts`);
  await expect(page).toHaveURL(new RegExp(`/p/sweep/run/${r.id}$`));

  await page.goto(`/#/experiments/${sweepProject.id}`);
  await expect(page).toHaveURL(/\/p\/sweep$/);
  await expect(page.getByTestId("runs-scroller")).toHaveAttribute("data-total", String(sweepProject.runs));
  // The back button does not return to the hash link.
  await page.goBack();
  await expect(page).not.toHaveURL(/#\/experiments/);

  // Unknown ones say what is missing.
  await page.goto("/#/experiments/987654");
  await expect(page.locator(".empty-title")).toHaveText("No experiment 987654");
  await page.goto(`/#/experiments/${sweepProject.id}/runs/nosuchrun`);
  await expect(page.locator(".empty-title")).toHaveText("No run nosuchrun");
});
