// Replays on the dashboard (issue 12), against the API and what the real
// `labbook replay` made in project "replay" (global-setup.ts, replayRuns):
// an original run of fixtures/replay_train.py replayed as it is (it
// reproduces), as the what-if `--set noise=1` (unseeded noise from step 10:
// it diverges there) and without a check; and replays whose originals were
// deleted for good and softly.
import type { Page } from "@playwright/test";
import type { ReplayFixture } from "./global-setup";
import type { RGB } from "./drawn";
import { close, colorKey, drawn, pixelOf, probe, rgb } from "./drawn";
import { apiGet, chartDebug, expect, screenshots, shown, test } from "./helpers";

const P = "replay";
const fixture = (): ReplayFixture => {
  const f = JSON.parse(process.env.LABBOOK_E2E_REPLAY ?? "null") as ReplayFixture | null;
  if (!f) throw new Error("LABBOOK_E2E_REPLAY is not set: run through playwright (global-setup.ts makes the replays)");
  return f;
};

type Verdict = { state: "reproduced" } | { state: "within_tolerance" } | { state: "diverged"; step: number } | { state: "missing"; in_replay: boolean };
type MetricCheck = {
  key: string;
  verdict: Verdict;
  compared: number;
  max_abs_dev: number | null;
  max_rel_dev: number | null;
  at_divergence?: [number | null, number | null];
  final_original: number | null;
  final_replay: number | null;
};
type Check = { original: string; replay: string; tolerance: { rel: number; abs: number }; verdict: Verdict; metrics: MetricCheck[] };
type Brief = { id: string; name: string; status: string; verdict: string | null; set: string | null };
type Replays = { run: string; replay_of: Brief | { id: string; missing: true } | null; replays: Brief[]; replays_total: number; check: Check | null };
type Run = { id: string; name: string; config: Record<string, unknown>; environment: { command: string[]; python?: { version?: string } } };

const replays = (id: string) => apiGet<Replays>(`/api/v1/runs/${id}/replays`);
const run = (id: string) => apiGet<Run>(`/api/v1/runs/${id}`);
const viewPath = (original: string, replay: string) => `/p/${P}/replay/${original}/${replay}`;

function verdictText(v: Verdict): string {
  if (v.state === "reproduced") return "reproduced";
  if (v.state === "within_tolerance") return "reproduced within tolerance";
  if (v.state === "diverged") return `diverged at step ${v.step}`;
  return v.in_replay ? "missing metric (not in the replay)" : "missing metric (not in the original)";
}

/** A curve as the API has it, whole. */
async function curve(id: string, key: string): Promise<[number, number][]> {
  const r = await apiGet<{ series: { steps: number[]; values: (number | string)[]; downsampled: boolean }[] }>(`/api/v1/series?runs=${id}&keys=${encodeURIComponent(key)}&buckets=10000`);
  const s = r.series[0];
  if (!s || s.downsampled) throw new Error(`${id} ${key}: no whole curve`);
  return s.steps.map((st, i) => [st, Number(s.values[i])]);
}

function expectPoints(got: [number, number | null][] | undefined, want: [number, number][], what: string) {
  expect(got?.length, `${what}: number of points`).toBe(want.length);
  const bad = want.filter(([x, y], i) => {
    const [gx, gy] = got?.[i] ?? [NaN, NaN];
    return !close(gx, x) || gy === null || !close(gy, y);
  });
  expect(bad.slice(0, 5), `${what}: points that differ from the API's`).toEqual([]);
}

/** A panel has drawn its curves (the points of both runs, or one). */
async function waitForPanel(page: Page, metric: string, points: number) {
  await expect.poll(async () => (await chartDebug(page, metric))?.points ?? 0, { message: `points drawn in ${metric}` }).toBe(points);
}

async function themeRed(page: Page): Promise<RGB> {
  return rgb(await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue("--red").trim()));
}

/** The verdict table's cells of one metric, as shown. */
async function row(page: Page, key: string) {
  const tr = page.getByTestId("verdict-table").locator(`tr[data-metric="${key}"]`);
  const cell = async (col: string) => (await tr.locator(`[data-col="${col}"]`).innerText()).split("\n")[0].trim();
  return {
    tr,
    verdict: await tr.locator('[data-col="verdict"] .verdict-badge').innerText(),
    state: await tr.getAttribute("data-verdict"),
    compared: shown(await cell("compared")),
    maxAbs: await cell("max_abs_dev"),
    maxRel: await cell("max_rel_dev"),
    finalOriginal: await cell("final_original"),
    finalReplay: await cell("final_replay"),
  };
}

/** A deviation or final value as shown: a number to 4 significant digits,
 * or "—" for a non-finite one. */
function expectShown(text: string, v: number | null, what: string) {
  if (v === null) expect(text, what).toBe("—");
  else expect(shown(text), what).toBeCloseToSig(v);
}

test("run page: the original lists its replays newest first, each with its verdict and what-if and a link to its check; a replay names its original with its verdict", async ({ page }) => {
  const f = fixture();
  const api = await replays(f.original);
  expect(api.replay_of).toBeNull();
  expect(api.replays_total).toBe(3);
  expect(api.replays.map((x) => x.id).sort()).toEqual([f.reproduced, f.diverged, f.unchecked].sort());

  await page.goto(`/p/${P}/run/${f.original}`);
  const section = page.locator("#replays");
  await expect(section.locator(".card-head")).toContainText("Replays");
  await expect(section.locator(".card-head")).toContainText("3 replays");
  await expect(section.getByTestId("replay-of")).toHaveCount(0);
  const rows = section.getByTestId("replays").locator("tbody tr");
  await expect(rows).toHaveCount(3);
  expect(await rows.evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.run))).toEqual(api.replays.map((x) => x.id));
  const want: Record<string, { verdict: string; kind: string; set: string }> = {
    [f.reproduced]: { verdict: "reproduced", kind: "reproduced", set: "same config" },
    [f.diverged]: { verdict: `diverged at step ${f.divergeStep}`, kind: "diverged", set: "noise=1" },
    [f.unchecked]: { verdict: "not checked", kind: "unchecked", set: "same config" },
  };
  for (const x of api.replays) {
    const tr = section.locator(`tr[data-run="${x.id}"]`);
    await expect(tr.getByTestId("replay-link")).toHaveText(x.name);
    await expect(tr.getByTestId("replay-link")).toHaveAttribute("href", `/p/${P}/run/${x.id}`);
    await expect(tr.locator('[data-col="verdict"] .verdict-badge')).toHaveText(want[x.id].verdict);
    await expect(tr.locator('[data-col="verdict"] .verdict-badge')).toHaveAttribute("data-verdict", want[x.id].kind);
    await expect(tr.locator('[data-col="set"]')).toHaveText(want[x.id].set);
    await expect(tr.getByTestId("replay-view-link")).toHaveAttribute("href", viewPath(f.original, x.id));
    // The API's verdict text, as stored with the replay.
    if (x.verdict) expect(want[x.id].verdict).toBe(x.verdict);
  }
  // The verdicts' colors: green for reproduced, red for diverged.
  const color = (id: string) => section.locator(`tr[data-run="${id}"] .verdict-badge`).evaluate((e) => getComputedStyle(e).color);
  const css = (v: string) => page.evaluate((name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim(), v);
  expect(rgb(await color(f.reproduced))).toEqual(rgb(await css("--green")));
  expect(rgb(await color(f.diverged))).toEqual(rgb(await css("--red")));
  await screenshots(page, "run-replays");

  // The what-if replay's own page: its original, its verdict and what it set.
  await section.locator(`tr[data-run="${f.diverged}"]`).getByTestId("replay-link").click();
  await expect(page).toHaveURL(`/p/${P}/run/${f.diverged}`);
  const of = page.getByTestId("replay-of");
  await expect(of).toHaveAttribute("data-state", "ok");
  await expect(of.getByTestId("replay-of-link")).toHaveText("replay-original");
  await expect(of.getByTestId("replay-of-link")).toHaveAttribute("href", `/p/${P}/run/${f.original}`);
  await expect(of.getByTestId("replay-of-verdict")).toHaveText(`diverged at step ${f.divergeStep}`);
  await expect(of.getByTestId("replay-of-set")).toHaveText("what if noise=1");
  await expect(page.locator("#replays").getByTestId("replays")).toHaveCount(0);
  await screenshots(page, "run-replay-of");
  await of.getByTestId("replay-view-link").click();
  await expect(page).toHaveURL(viewPath(f.original, f.diverged));
  await expect(page.getByTestId("verdict-table")).toBeVisible();
});

test("replay view of the what-if: the stored check's verdicts, steps, deviations and final values with its tolerance; both curves drawn, the divergence step marked; the config and command differences", async ({ page }) => {
  const f = fixture();
  const api = await replays(f.diverged);
  const check = api.check;
  if (!check) throw new Error("the what-if replay has no stored check");
  expect(check.original).toBe(f.original);
  expect(check.verdict).toEqual({ state: "diverged", step: f.divergeStep });
  const loss = check.metrics.find((m) => m.key === "train/loss");
  expect(loss?.verdict).toEqual({ state: "diverged", step: f.divergeStep });
  expect(check.metrics.find((m) => m.key === "train/acc")?.verdict).toEqual({ state: "reproduced" });

  await page.goto(viewPath(f.original, f.diverged));
  await expect(page.getByTestId("overall-verdict")).toHaveText(`diverged at step ${f.divergeStep}`);
  await expect(page.getByTestId("overall-verdict")).toHaveAttribute("data-verdict", "diverged");
  await expect(page.getByTestId("tolerance")).toHaveText("rel=1e-6, abs=0");
  await expect(page.locator("#verdicts .card-head")).toContainText("tolerance rel=1e-6, abs=0");
  await expect(page.getByTestId("replay-set")).toHaveText("noise=1");
  await expect(page.getByTestId("pair-original").locator("a")).toHaveAttribute("href", `/p/${P}/run/${f.original}`);
  await expect(page.getByTestId("pair-replay").locator("a")).toHaveAttribute("href", `/p/${P}/run/${f.diverged}`);

  // The verdict table: one row per metric of the check, each value the check's.
  const table = page.getByTestId("verdict-table");
  await expect(table.locator("tbody tr")).toHaveCount(check.metrics.length);
  expect(await table.locator("tbody tr").evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.metric))).toEqual(check.metrics.map((m) => m.key));
  for (const m of check.metrics) {
    const r = await row(page, m.key);
    expect(r.verdict, m.key).toBe(verdictText(m.verdict));
    expect(r.state, m.key).toBe(m.verdict.state);
    expect(r.compared, `${m.key}: steps compared`).toBe(m.compared);
    expectShown(r.maxAbs, m.max_abs_dev, `${m.key}: max abs deviation`);
    expectShown(r.maxRel, m.max_rel_dev, `${m.key}: max rel deviation`);
    expectShown(r.finalOriginal, m.final_original, `${m.key}: final original`);
    expectShown(r.finalReplay, m.final_replay, `${m.key}: final replay`);
  }
  expect(shown((await row(page, "train/loss")).maxAbs)).toBeGreaterThan(0.2);
  expect((await row(page, "train/acc")).maxAbs).toBe("0");
  // The two values where the loss parted.
  const at = loss?.at_divergence;
  if (!at || at[0] === null || at[1] === null) throw new Error("no values at the divergence");
  const atText = await table.locator('tr[data-metric="train/loss"]').getByTestId("at-divergence").innerText();
  const m = /^at step (\d+): (\S+) → (\S+)$/.exec(atText.trim());
  expect(m, atText).not.toBeNull();
  expect(Number(m?.[1])).toBe(f.divergeStep);
  expect(shown(m?.[2] ?? "")).toBeCloseToSig(at[0]);
  expect(shown(m?.[3] ?? "")).toBeCloseToSig(at[1]);

  // Curves: per metric, the original's and the replay's, the API's points.
  const origLoss = await curve(f.original, "train/loss");
  const repLoss = await curve(f.diverged, "train/loss");
  expect(origLoss.length).toBe(20);
  for (const key of ["train/loss", "train/acc"]) {
    const a = await curve(f.original, key);
    const b = await curve(f.diverged, key);
    await waitForPanel(page, key, a.length + b.length);
    const d = await drawn(page, key);
    expect(d?.series.map((s) => s.label)).toEqual(["replay-original (original)", `${(await run(f.diverged)).name} (replay)`]);
    expectPoints(d?.series[0].points, a, `${key}: the original`);
    expectPoints(d?.series[1].points, b, `${key}: the replay`);
    expect(d?.series[0].dash, "the original solid").toBeNull();
    expect(d?.series[1].dash, "the replay dashed over it").not.toBeNull();
  }
  // Only the diverged metric is marked, at its step.
  const lossPanel = page.locator('.chart-panel[data-metric="train/loss"]');
  await expect(lossPanel).toHaveAttribute("data-marks", String(f.divergeStep));
  await expect(page.locator('.chart-panel[data-metric="train/acc"]')).not.toHaveAttribute("data-marks", /./);

  // On the canvas: each run's color where the two curves are apart (from
  // step 10 on), and the theme's red down the line at step 10.
  const d = await drawn(page, "train/loss");
  if (!d) throw new Error("train/loss is not drawn");
  const [origColor, repColor] = d.series.map((s) => rgb(s.stroke));
  const apart = (pts: [number, number][]) => pts.filter(([s]) => s > f.divergeStep).map(([s, v]) => pixelOf(d, s, v, false));
  const origHits = await probe(page, "train/loss", apart(origLoss), origColor, "", 2, 40);
  const repHits = await probe(page, "train/loss", apart(repLoss), repColor, "", 3, 40);
  expect(origHits.filter(Boolean).length, "the original's points after the divergence, in its color").toBeGreaterThanOrEqual(origHits.length - 1);
  expect(repHits.filter(Boolean).length, "the replay's points after the divergence, in its color (dashed)").toBeGreaterThanOrEqual(repHits.length - 2);
  if (colorKey(origColor) === colorKey(repColor)) test.info().annotations.push({ type: "note", description: "the two runs share a color: told apart by the dash only" });
  const [x10] = pixelOf(d, f.divergeStep, d.y.min, false);
  const ys = Array.from({ length: 12 }, (_, i) => d.bbox.top + ((i + 0.5) / 12) * d.bbox.height);
  const red = await themeRed(page);
  const line = await probe(page, "train/loss", ys.map((y) => [x10, y]), red, "", 1, 30);
  expect(line.filter(Boolean).length, "the divergence line at step 10, in the theme's red").toBeGreaterThanOrEqual(10);
  // Nowhere else: a step away there is no red line.
  const [x12] = pixelOf(d, f.divergeStep + 2, d.y.min, false);
  const off = await probe(page, "train/loss", ys.map((y) => [x12, y]), red, "", 0, 30);
  expect(off.filter(Boolean).length, "no red line at step 12").toBeLessThanOrEqual(2);

  // What differs: the what-if's config value and command line; the rest the same.
  const o = await run(f.original);
  const r = await run(f.diverged);
  expect(o.config.noise).toBe(0);
  expect(r.config.noise).toBe(1);
  const diff = page.getByTestId("differences");
  // One row per config key that differs: noise, 0 then 1.
  const changes = diff.locator('tr[data-aspect="config"]');
  await expect(changes).toHaveCount(1);
  await expect(changes).toHaveAttribute("data-same", "0");
  await expect(changes).toHaveAttribute("data-key", "noise");
  await expect(changes.locator('[data-col="original"] .change-val')).toHaveText("0");
  await expect(changes.locator('[data-col="replay"] .change-val')).toHaveText("1");
  await expect(changes.locator('[data-col="replay"]')).toHaveText("noise = 1");
  await expect(diff.locator('tr[data-aspect="command"]')).toHaveAttribute("data-same", "0");
  await expect(diff.locator('tr[data-aspect="command"] [data-col="original"]')).toHaveText(o.environment.command.join(" "));
  await expect(diff.locator('tr[data-aspect="command"] [data-col="replay"]')).toHaveText(r.environment.command.join(" "));
  expect(r.environment.command).toContain("--noise=1");
  for (const same of ["python", "gpus", "host", "commit", "tree", "code", "packages"]) {
    await expect(diff.locator(`tr[data-aspect="${same}"]`), same).toHaveAttribute("data-same", "1");
    await expect(diff.locator(`tr[data-aspect="${same}"] .no-diff`), same).toHaveText("no differences");
  }
  await expect(diff.locator('tr[data-aspect="python"]')).toContainText(o.environment.python?.version ?? "?");
  // The code snapshot the fixture's untracked file made, the same for both.
  await expect(diff.locator('tr[data-aspect="code"]')).toContainText(/code:v\d+ · [0-9a-f]{12} · 1 file/);
  await expect(page.getByTestId("differences-count")).toHaveText("2 differences");
  await screenshots(page, "replay-diverged");
});

test("replay view of a replay that reproduced: every metric reproduced with no deviation and no mark, nothing differs; an unchecked replay says so and gives the command that checks it", async ({ page }) => {
  const f = fixture();
  const check = (await replays(f.reproduced)).check;
  if (!check) throw new Error("the reproduced replay has no stored check");
  await page.goto(viewPath(f.original, f.reproduced));
  await expect(page.getByTestId("overall-verdict")).toHaveText("reproduced");
  const table = page.getByTestId("verdict-table");
  await expect(table.locator("tbody tr")).toHaveCount(check.metrics.length);
  for (const m of check.metrics) {
    const r = await row(page, m.key);
    expect(r.verdict).toBe("reproduced");
    expect(r.compared).toBe(20);
    expect(r.maxAbs).toBe("0");
    expect(r.maxRel).toBe("0");
    expect(r.finalReplay).toBe(r.finalOriginal);
    await expect(r.tr.getByTestId("at-divergence")).toHaveCount(0);
  }
  for (const m of check.metrics) {
    await waitForPanel(page, m.key, 40);
    // The same points twice: the replay's curve is the original's.
    const d = await drawn(page, m.key);
    expect(d?.series[1].points).toEqual(d?.series[0].points);
  }
  await expect(page.locator(".chart-panel[data-marks]")).toHaveCount(0);
  await expect(page.getByTestId("differences").locator('tr[data-aspect="config"]')).toHaveAttribute("data-same", "1");
  await expect(page.getByTestId("differences").locator('tr[data-aspect="config"] .no-diff')).toHaveText("no differences");
  // A replay runs its command again where its code was rebuilt: the same command.
  await expect(page.getByTestId("differences").locator('tr[data-aspect="command"]')).toHaveAttribute("data-same", "1");
  await expect(page.getByTestId("differences-count")).toHaveText("no differences");
  await screenshots(page, "replay-reproduced");

  // Never checked: no table, the command to make the check; the curves still there.
  expect((await replays(f.unchecked)).check).toBeNull();
  await page.goto(viewPath(f.original, f.unchecked));
  await expect(page.getByTestId("no-check")).toContainText("No check stored for these two runs");
  await expect(page.getByTestId("check-command")).toHaveText(`labbook check-replay ${f.original} ${f.unchecked}`);
  await expect(page.getByTestId("verdict-table")).toHaveCount(0);
  await expect(page.getByTestId("overall-verdict")).toHaveText("not checked");
  await waitForPanel(page, "train/loss", 40);
  expect((await drawn(page, "train/loss"))?.series.length).toBe(2);
  await screenshots(page, "replay-unchecked");
});

test("replays whose original is gone say so: deleted for good (the stored check, the replay's curves alone) or deleted (a way to restore it); ids that are no run end as a message with a way back", async ({ page }) => {
  const f = fixture();
  // Deleted for good: the API names the id only.
  const gone = await replays(f.gone.replay);
  expect(gone.replay_of).toEqual({ id: f.gone.original, missing: true });
  await page.goto(`/p/${P}/run/${f.gone.replay}`);
  const of = page.getByTestId("replay-of");
  await expect(of).toHaveAttribute("data-state", "missing");
  await expect(of).toContainText(f.gone.original);
  await expect(of).toContainText("not in the store");
  await expect(of.getByTestId("replay-of-verdict")).toHaveText("reproduced");
  await of.getByTestId("replay-view-link").click();
  await expect(page).toHaveURL(viewPath(f.gone.original, f.gone.replay));
  await expect(page.getByTestId("original-missing")).toContainText(`The original run ${f.gone.original} is no longer in the store`);
  await expect(page.getByTestId("verdict-table").locator("tbody tr")).toHaveCount(gone.check?.metrics.length ?? -1);
  await waitForPanel(page, "train/loss", 20);
  expect((await drawn(page, "train/loss"))?.series.length, "the replay's curve alone").toBe(1);
  await expect(page.getByTestId("differences")).toHaveCount(0);
  await screenshots(page, "replay-original-gone");

  // Deleted softly: still readable, marked, and how to restore it.
  await page.goto(`/p/${P}/run/${f.binned.replay}`);
  await expect(page.getByTestId("replay-of")).toHaveAttribute("data-state", "deleted");
  await expect(page.getByTestId("replay-of").locator(".badge.danger")).toHaveText("deleted");
  await page.goto(viewPath(f.binned.original, f.binned.replay));
  await expect(page.getByTestId("original-deleted")).toContainText(`labbook restore ${f.binned.original}`);
  await expect(page.getByTestId("overall-verdict")).toHaveText("reproduced");
  await waitForPanel(page, "train/loss", 40);

  // No such replay, no such original either: the page says which, with a way back.
  await page.goto(viewPath("zzzzzzzz", "yyyyyyyy"));
  await expect(page.locator(".empty-title")).toHaveText("No run yyyyyyyy");
  await expect(page.locator(".empty-body")).toContainText("and no run zzzzzzzz either");
  await expect(page.getByRole("button", { name: "Retry" })).toHaveCount(0);
  await page.getByTestId("back-to-project").click();
  await expect(page).toHaveURL(`/p/${P}`);
  // A real original, a replay id that is no run: back to the original.
  await page.goto(viewPath(f.original, "yyyyyyyy"));
  await expect(page.locator(".empty-title")).toHaveText("No run yyyyyyyy");
  await page.getByTestId("to-original").click();
  await expect(page).toHaveURL(`/p/${P}/run/${f.original}`);
  // Two runs that are no replay of one another: compared, and said so.
  await page.goto(viewPath(f.binned.replay, f.reproduced));
  await expect(page.getByTestId("not-a-replay")).toContainText("the two are compared as any two runs");
  await expect(page.getByTestId("no-check")).toBeVisible();
  // A path with too few parts is no page.
  await page.goto(`/p/${P}/replay/${f.original}`);
  await expect(page.locator(".empty-title")).toHaveText("Page not found");
});
