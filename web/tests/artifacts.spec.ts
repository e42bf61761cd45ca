// The artifacts browser (issue 10), against the API and the files the
// fixture wrote: project "artifacts" holds one run with a file of every
// preview kind and the hostile ones (fixtures/mlflow_runs.py, logged through
// the real mlflow client); "registry" a logged model with an input example.
import type { Page } from "@playwright/test";
import { readFileSync } from "node:fs";
import { decodePng } from "./drawn";
import type { MlflowFixture } from "./global-setup";
import { apiGet, expect, runByName, screenshots, serverUrl, test } from "./helpers";

type Listing = { path: string; files: { path: string; name: string; is_dir: boolean; size: number | null }[] };
type Preview = { kind: string; path: string; size: number; text?: string; reason?: string; columns?: string[]; rows?: string[][]; truncated?: boolean; format?: string };

function fixture(): MlflowFixture {
  return JSON.parse(process.env.LABBOOK_E2E_MLFLOW ?? "null") as MlflowFixture;
}

const runId = () => fixture().files.run;
const listing = (path: string, owner = `runs/${runId()}`) => apiGet<Listing>(`/api/v1/${owner}/artifacts?path=${encodeURIComponent(path)}`);
const preview = (path: string, owner = `runs/${runId()}`) => apiGet<Preview>(`/api/v1/${owner}/artifacts/preview?path=${encodeURIComponent(path)}`);

async function open(page: Page, path: string) {
  await page.goto(`/p/artifacts/run/${runId()}?tab=artifacts&path=${encodeURIComponent(path)}`);
  await expect(page.getByTestId("preview").or(page.getByTestId("folder-table")).first()).toBeVisible();
}

/** "4.0 KB" → bytes, and how far the rounding may be off. */
function bytes(text: string): { n: number; slack: number } {
  const m = /^([\d.]+) (B|KB|MB|GB)$/.exec(text.trim());
  if (!m) throw new Error(`not a size: ${text}`);
  const unit = 1024 ** ["B", "KB", "MB", "GB"].indexOf(m[2]);
  const decimals = (m[1].split(".")[1] ?? "").length;
  return { n: Number(m[1]) * unit, slack: 0.5 * 10 ** -decimals * unit };
}

async function column(page: Page, i: number): Promise<string[]> {
  return page.getByTestId("preview-table").locator(`tbody tr td:nth-child(${i + 1})`).allInnerTexts();
}

test("artifacts browser: each folder is listed by one request when first opened; names, sizes and downloads are the API's; a chosen file is in the URL", async ({ page }) => {
  const listed: string[] = [];
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.pathname === `/api/v1/runs/${runId()}/artifacts`) listed.push(u.searchParams.get("path") ?? "");
  });
  await page.goto(`/p/artifacts/run/${runId()}?tab=artifacts`);
  const tree = page.getByTestId("artifact-tree");
  const root = await listing("");
  // Folders first, then files, each by name; files with the API's sizes.
  const expected = [...root.files].sort((a, b) => Number(b.is_dir) - Number(a.is_dir) || (a.name < b.name ? -1 : 1));
  await expect(tree.locator(":scope > div > .tree-row")).toHaveCount(expected.length);
  expect(await tree.locator(":scope > div > .tree-row").evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.path))).toEqual(expected.map((f) => f.path));
  for (const f of expected.filter((x) => !x.is_dir)) {
    const s = bytes(await tree.locator(`.tree-row[data-path="${f.path}"] .tree-size`).innerText());
    expect(Math.abs(s.n - (f.size ?? 0)), f.path).toBeLessThanOrEqual(s.slack);
  }
  expect(listed).toEqual([""]);
  await expect(page.getByTestId("folder-table").locator("tbody tr")).toHaveCount(expected.length);
  await screenshots(page, "run-artifacts-folder");

  // Down four folders: one listing each, and none again on reopening.
  for (const p of ["deep", "deep/a", "deep/a/b", "deep/a/b/c"]) {
    await tree.locator(`.tree-row[data-path="${p}"]`).click();
    const l = await listing(p);
    for (const f of l.files) await expect(tree.locator(`.tree-row[data-path="${f.path}"]`)).toBeVisible();
  }
  expect(listed).toEqual(["", "deep", "deep/a", "deep/a/b", "deep/a/b/c"]);
  await expect(page.getByTestId("artifacts")).toHaveAttribute("data-listings", "5");
  await tree.locator('.tree-row[data-path="deep"]').click(); // open: closes it
  await expect(tree.locator('.tree-row[data-path="deep/a"]')).toHaveCount(0);
  await tree.locator('.tree-row[data-path="deep"]').click();
  await expect(tree.locator('.tree-row[data-path="deep/a/b/c/leaf.txt"]')).toBeVisible();
  expect(listed).toHaveLength(5);

  await tree.locator('.tree-row[data-path="deep/a/b/c/leaf.txt"]').click();
  await expect(page.getByTestId("preview-text")).toHaveText((await preview("deep/a/b/c/leaf.txt")).text ?? "");
  await expect(page).toHaveURL(/path=deep\/a\/b\/c\/leaf.txt/);
  // The address opens the same file, its folders opened above it.
  await page.reload();
  await expect(page.getByTestId("preview-text")).toHaveText("four folders down\n");
  await expect(tree.locator('.tree-row[data-path="deep/a/b/c/leaf.txt"]')).toHaveClass(/selected/);

  // A download is the file itself, named as it is.
  await page.locator('.tree-row[data-path="plots"]').click();
  await page.locator('.tree-row[data-path="plots/quadrants.png"]').click();
  const link = page.getByTestId("download");
  await expect(link).toHaveAttribute("href", `/api/v1/runs/${runId()}/artifacts/raw?path=plots%2Fquadrants.png`);
  const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
  expect(download.suggestedFilename()).toBe("quadrants.png");
  const raw = Buffer.from(await (await fetch(`${serverUrl()}/api/v1/runs/${runId()}/artifacts/raw?path=plots/quadrants.png`)).arrayBuffer());
  expect(readFileSync((await download.path()) ?? "")).toEqual(raw);
});

test("previews: a CSV's first rows sorted by a click on a column, its truncation said; TSV, JSON pretty-printed, YAML, sanitized Markdown, long text cut short", async ({ page }) => {
  const csv = await preview("tables/scores.csv");
  expect(csv).toMatchObject({ kind: "table", truncated: true });
  await open(page, "tables/scores.csv");
  const table = page.getByTestId("preview-table");
  await expect(table).toBeVisible(); // the preview loads after its pane shows
  expect(await table.locator("thead th").allInnerTexts()).toEqual(csv.columns);
  await expect(table.locator("tbody tr")).toHaveCount(csv.rows?.length ?? -1);
  expect(await column(page, 2)).toEqual(csv.rows?.map((r) => r[2]));
  await expect(page.getByTestId("truncated")).toContainText(`first ${csv.rows?.length} rows`);
  // score: numbers, ascending then descending; name: text.
  const scores = (csv.rows ?? []).map((r) => Number(r[1]));
  await table.locator('th[data-col="1"] button').click();
  await expect(table.locator('th[data-col="1"]')).toHaveAttribute("aria-sort", "ascending");
  expect((await column(page, 1)).map(Number)).toEqual([...scores].sort((a, b) => a - b));
  await table.locator('th[data-col="1"] button').click();
  expect((await column(page, 1)).map(Number)).toEqual([...scores].sort((a, b) => b - a));
  await table.locator('th[data-col="2"] button').click();
  const names = (csv.rows ?? []).map((r) => r[2]);
  expect(await column(page, 2)).toEqual([...names].sort((a, b) => a.localeCompare(b)));
  await screenshots(page, "run-artifacts-table");

  await open(page, "tables/small.tsv");
  const tsv = await preview("tables/small.tsv");
  expect(await page.getByTestId("preview-table").locator("tbody tr").allInnerTexts()).toEqual(tsv.rows?.map((r) => r.join("\t")));
  await expect(page.getByTestId("truncated")).toHaveCount(0);

  await open(page, "metrics.json");
  const json = await preview("metrics.json");
  await expect(page.getByTestId("preview-text")).toHaveAttribute("data-pretty", "1");
  expect(await page.getByTestId("preview-text").innerText()).toBe(JSON.stringify(JSON.parse(json.text ?? ""), null, 2));
  await screenshots(page, "run-artifacts-json");

  await open(page, "config/params.yaml");
  expect(await page.getByTestId("preview-text").innerText()).toBe((await preview("config/params.yaml")).text);

  // Markdown through the notes' sanitizer: its HTML is text, its remote
  // image a link.
  await open(page, "notes/readme.md");
  const md = page.locator(".preview-markdown");
  await expect(md.locator("h1")).toHaveText("Notes on the run");
  await expect(md.locator("li")).toHaveCount(2);
  await expect(md).toContainText("<script>window.top.__pwned = 9</script>");
  await expect(md.locator("img")).toHaveCount(0);
  await expect(md.locator('a[href="http://example.com/remote.png"]')).toHaveCount(1);
  expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
  await screenshots(page, "run-artifacts-markdown");

  await open(page, "logs/train.log");
  const log = await preview("logs/train.log");
  expect(log.truncated).toBe(true);
  expect((await page.getByTestId("preview-text").innerText()).length).toBe(log.text?.length);
  await expect(page.getByTestId("truncated")).toContainText("first 256 KB");
  await screenshots(page, "run-artifacts-text");
});

test("bad files end as a message in their pane: random bytes named .csv, a .parquet that is not Parquet, Parquet cut short, an image too large to load", async ({ page }) => {
  const raws: string[] = [];
  page.on("request", (r) => {
    if (r.url().includes("/artifacts/raw")) raws.push(decodeURIComponent(r.url()));
  });
  for (const path of ["garbage.csv", "garbage.parquet", "plots/huge.png"]) {
    const p = await preview(path);
    expect(p.kind, path).toBe("none");
    await open(page, path);
    await expect(page.getByTestId("preview-message"), path).toContainText(p.reason ?? "?");
  }
  expect(raws, "nothing loaded of a file the server will not preview").toEqual([]);
  await screenshots(page, "run-artifacts-too-large");

  // The server sees PAR1 at the start; the browser finds the rest broken.
  expect((await preview("tables/broken.parquet")).kind).toBe("parquet");
  await open(page, "tables/broken.parquet");
  await expect(page.getByTestId("preview-message")).toContainText("This Parquet file could not be read");
  await expect(page.getByTestId("preview-table")).toHaveCount(0);
  await screenshots(page, "run-artifacts-bad-parquet");
  // The page is still whole: another file opens from the same tree.
  await page.locator('.tree-row[data-path="tables/small.tsv"]').click();
  await expect(page.getByTestId("preview-table")).toBeVisible();
});

test("HTML previews run in a sandbox: the file's scripts, handlers and remote loads never happen, its text shows", async ({ page }) => {
  const dialogs: string[] = [];
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  const html = await preview("report/hostile.html");
  expect(html.kind).toBe("html");
  expect(html.text).toContain("<script>window.top.document.title");
  await open(page, "report/hostile.html");
  const frame = page.getByTestId("html-frame");
  await expect(frame).toHaveAttribute("sandbox", "");
  const title = await page.title();
  const content = page.frameLocator('[data-testid="html-frame"]');
  await expect(content.locator("#marker")).toHaveText("html-preview-marker: the text of the page is shown");
  await expect(content.locator("h1")).toHaveText("Hostile report");
  await expect(content.locator("body")).toContainText("a < b, and bold text");
  // Give anything that could run time to: a click on the handler's element,
  // then frames.
  await content.locator("h1").click();
  await page.evaluate(() => new Promise((r) => setTimeout(r, 300)));
  expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), "a script of the file ran").toBeUndefined();
  expect(await page.title()).toBe(title);
  expect(dialogs).toEqual([]);
  // What the frame holds: no script, handler, style or remote reference.
  const doc = (await frame.getAttribute("srcdoc")) ?? "";
  for (const bad of ["<script", "onerror", "onclick", "style=", "<style", "<link", "<meta", "<iframe", "example.com", 'href="javascript', "src="]) expect(doc.toLowerCase(), bad).not.toContain(bad);
  const inner = page.frames().find((f) => f !== page.mainFrame() && f.url() === "about:srcdoc");
  expect(await inner?.evaluate(() => document.querySelectorAll("script, iframe, link, style, [onclick], [onerror]").length)).toBe(0);
  await screenshots(page, "run-artifacts-html");

  // The sandbox holds by itself: a script put in the frame as it stands,
  // past the rewrite, does not run either.
  await frame.evaluate((f: HTMLIFrameElement) => {
    f.srcdoc = '<script>window.top.__pwned = 10; window.top.document.title = "pwned"</script><p id="raw">raw markup</p>';
  });
  await expect(page.frameLocator('[data-testid="html-frame"]').locator("#raw")).toHaveText("raw markup");
  await page.evaluate(() => new Promise((r) => setTimeout(r, 300)));
  expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), "a script ran in the sandboxed frame").toBeUndefined();
  expect(await page.title()).toBe(title);

  // scikit-learn's own estimator.html, from the GridSearch autolog.
  const grid = await runByName("gridsearch", "grid");
  await page.goto(`/p/gridsearch/run/${grid.id}?tab=artifacts&path=estimator.html`);
  await expect(page.frameLocator('[data-testid="html-frame"]').locator("pre").first()).toContainText("GridSearchCV");
  // The frame is about as tall as its text: the estimator's few lines are
  // not left at the top of a tall empty box.
  const est = page.getByTestId("html-frame");
  const inFrame = page.frames().find((f) => f !== page.mainFrame() && f.url() === "about:srcdoc");
  const contentH = (await inFrame?.evaluate(() => document.body.getBoundingClientRect().bottom + 8)) ?? NaN;
  const frameH = (await est.boundingBox())?.height ?? NaN;
  expect(frameH, `frame ${frameH}px for ${contentH}px of content`).toBeGreaterThanOrEqual(Math.min(contentH, 640) - 1);
  expect(frameH, `frame ${frameH}px for ${contentH}px of content`).toBeLessThan(Math.max(contentH * 2, 160));
  await screenshots(page, "run-artifacts-estimator");
});

test("images and Parquet come from the raw file: the PNG's quadrants at their pixels; Parquet decoded in the page, its rows as written, sortable", async ({ page }) => {
  const { quadrants, png } = fixture().files;
  await open(page, "plots/quadrants.png");
  const img = page.getByTestId("preview-image");
  await expect(img).toHaveAttribute("src", `/api/v1/runs/${runId()}/artifacts/raw?path=plots%2Fquadrants.png`);
  await expect(page.locator(".image-preview .preview-note")).toHaveText(`${png[0]} × ${png[1]} px`);
  const pixels = await img.evaluate((el: HTMLImageElement) => {
    const c = document.createElement("canvas");
    c.width = el.naturalWidth;
    c.height = el.naturalHeight;
    const ctx = c.getContext("2d");
    if (!ctx) return [];
    ctx.drawImage(el, 0, 0);
    const at = (x: number, y: number) => [...ctx.getImageData(x, y, 1, 1).data.slice(0, 3)];
    const w = c.width;
    const h = c.height;
    return [at(w / 4, h / 4), at((3 * w) / 4, h / 4), at(w / 4, (3 * h) / 4), at((3 * w) / 4, (3 * h) / 4)];
  });
  expect(pixels).toEqual(quadrants);
  // Drawn on screen too: the middle of the top-left quadrant is red.
  const box = await img.boundingBox();
  if (!box) throw new Error("no image box");
  const shot = await page.screenshot({ clip: { x: box.x + box.width / 4, y: box.y + box.height / 4, width: 1, height: 1 } });
  const d = decodePng(shot);
  const [r, g, b] = [d.rgba[0], d.rgba[1], d.rgba[2]];
  expect(Math.abs(r - quadrants[0][0]) + Math.abs(g - quadrants[0][1]) + Math.abs(b - quadrants[0][2])).toBeLessThan(12);
  await screenshots(page, "run-artifacts-image");

  // The fixture's table: step i, loss 1/(1+i), a label cycling cat, dog,
  // bird, and whether i is not a multiple of 4; 250 rows, 200 shown.
  await open(page, "tables/data.parquet");
  const table = page.getByTestId("preview-table");
  await expect(table.locator("tbody tr")).toHaveCount(200);
  expect(await table.locator("thead th").allInnerTexts()).toEqual(["step", "loss", "label", "correct"]);
  const rows = await table.locator("tbody tr").evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent ?? "")));
  // What pyarrow reads back from the same bytes.
  const written = fixture().files.parquet_rows;
  expect(written).toHaveLength(250);
  rows.forEach((row, i) => expect(row, `row ${i}`).toEqual(written[i].map(String)));
  expect(written[4]).toEqual([4, 0.2, "dog", false]);
  await expect(page.getByTestId("truncated")).toHaveText("The first 200 rows of 250.");
  await table.locator('th[data-col="1"] button').click();
  const losses = written.slice(0, 200).map((r) => Number(r[1]));
  expect((await column(page, 1)).map(Number)).toEqual([...losses].sort((a, b) => a - b));
  await screenshots(page, "run-artifacts-parquet");
});

test("MLflow model folders show flavors, signature and input example: in a run's files, and in a logged model's files reached from the run's models", async ({ page }) => {
  const mlmodel = (await preview("model/MLmodel")).text ?? "";
  const flavors = [...mlmodel.matchAll(/^ {2}(\w+):$/gm)].map((m) => m[1]);
  expect(flavors).toEqual(expect.arrayContaining(["python_function", "sklearn"]));
  const example = JSON.parse((await preview("model/input_example.json")).text ?? "null") as number[][];
  await open(page, "model");
  await expect(page.locator('.tree-row[data-path="model/MLmodel"]')).toBeVisible();
  const card = page.getByTestId("model-card");
  await expect(card.locator("[data-flavor]")).toHaveCount(flavors.length);
  expect(await card.locator("[data-flavor]").evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.flavor))).toEqual(flavors);
  const inputs = /inputs: '(.*)'/.exec(mlmodel)?.[1] ?? "";
  const spec = (JSON.parse(inputs) as { "tensor-spec": { dtype: string; shape: number[] } }[])[0]["tensor-spec"];
  await expect(card.locator('[data-spec="inputs"]')).toContainText(`tensor ${spec.dtype}`);
  await expect(card.locator('[data-spec="inputs"]')).toContainText(`shape ${JSON.stringify(spec.shape)}`);
  await expect(card.getByTestId("input-example").locator("tbody tr")).toHaveCount(example.length);
  const cells = await card.getByTestId("input-example").locator("tbody tr").evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent ?? "")));
  expect(cells).toEqual(example.map((r) => r.map(String)));
  await screenshots(page, "run-artifacts-model");

  // A registered model's run: its logged model's files from the Models list.
  const run = await runByName("registry", "register");
  const detail = await apiGet<{ outputs: { model_id: string; name: string }[] }>(`/api/v1/runs/${run.id}`);
  const model = detail.outputs[0];
  await page.goto(`/p/registry/run/${run.id}`);
  await page.locator(`[data-model-id="${model.model_id}"] [data-testid="model-files"]`).click();
  await expect(page).toHaveURL(new RegExp(`tab=artifacts&model=${model.model_id}`));
  const files = await listing("", `logged-models/${model.model_id}`);
  await expect(page.getByTestId("folder-table").locator("tbody tr")).toHaveCount(files.files.length);
  const ex = JSON.parse((await preview("input_example.json", `logged-models/${model.model_id}`)).text ?? "null") as number[][];
  await expect(page.getByTestId("input-example").locator("tbody tr")).toHaveCount(ex.length);
  const shownEx = await page.getByTestId("input-example").locator("tbody tr").evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => Number(td.textContent))));
  expect(shownEx).toEqual(ex);
  await expect(page.getByTestId("artifact-owners").locator(".seg-btn.active")).toHaveText(`Model: ${model.name}`);
  await screenshots(page, "logged-model-files");
});
