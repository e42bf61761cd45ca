// Versioned artifacts on the dashboard (issue 11), against the API and what
// the fixture logged through the real SDK (fixtures/artifact_runs.py):
// project "lineage", where run A logged the dataset `spirals` (v0, then v1
// @best) and 1,200 `shards`, run B used spirals:best, recorded a folder in
// place and logged the model `mlp` (@prod), and run C used the model.
import type { Locator, Page } from "@playwright/test";
import type { ArtifactsFixture } from "./global-setup";
import { apiGet, expect, screenshots, test } from "./helpers";

type RunRef = { id: string; name: string | null; project: string | null; status: string | null; deleted: boolean };
type Version = { project: string; name: string; type: string; version: number; ref: string; digest: string; size: number; file_count: number; aliases: string[]; description: string | null; created_ms: number; deleted_ms: number | null };
type Names = { types: string[]; total: number; artifacts: { name: string; type: string; versions: number; latest: number | null; latest_size: number; aliases: Record<string, number> }[] };
type Detail = Version & {
  metadata: Record<string, unknown>;
  producer: RunRef | null;
  files: { path: string; size: number; hash: string; reference: string | null }[];
  files_total: number;
  runs: (RunRef & { role: "input" | "output" })[];
};
type Graph = { root: string; nodes: { id: string; kind: "artifact" | "run"; name: string; version?: number; project: string }[]; edges: { from: string; to: string }[]; truncated: boolean };

const P = "lineage";
const fixture = (): ArtifactsFixture => JSON.parse(process.env.LABBOOK_E2E_ARTIFACTS ?? "null") as ArtifactsFixture;
const version = (name: string, v: string) => apiGet<Detail>(`/api/v1/projects/${P}/artifacts/${name}/versions/${v}`);

/** "4.0 KB" → bytes, and how far the rounding may be off. */
function bytes(text: string): { n: number; slack: number } {
  const m = /^([\d.]+) (B|KB|MB|GB)$/.exec(text.trim());
  if (!m) throw new Error(`not a size: ${text}`);
  const unit = 1024 ** ["B", "KB", "MB", "GB"].indexOf(m[2]);
  const decimals = (m[1].split(".")[1] ?? "").length;
  return { n: Number(m[1]) * unit, slack: 0.5 * 10 ** -decimals * unit };
}

async function expectSize(cell: Locator, size: number) {
  const shown = bytes(await cell.innerText());
  expect(Math.abs(shown.n - size), `${await cell.innerText()} for ${size} bytes`).toBeLessThanOrEqual(shown.slack);
}

/** The drawn box of a lineage node, in page pixels. */
async function box(page: Page, id: string) {
  const b = await page.locator(`[data-node-id="${id}"] .lg-box`).boundingBox();
  if (!b) throw new Error(`node ${id} is not drawn`);
  return b;
}

test("artifacts page: every artifact of the project with its type, versions, latest, aliases and size as the API has them; filtered by type", async ({ page }) => {
  const all = await apiGet<Names>(`/api/v1/projects/${P}/artifacts`);
  expect(all.artifacts.map((a) => a.name)).toEqual(["mlp", "raw-points", "shards", "spirals"]);
  await page.goto(`/p/${P}`);
  await page.locator(".nav-link", { hasText: "Artifacts" }).click();
  await expect(page).toHaveURL(`/p/${P}/artifacts`);
  await expect(page.locator(".nav-link.active")).toHaveText("Artifacts");
  const table = page.getByTestId("artifacts-table");
  await expect(table.locator("tbody tr")).toHaveCount(all.artifacts.length);
  expect(await table.locator("tbody tr").evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.artifact))).toEqual(all.artifacts.map((a) => a.name));
  for (const a of all.artifacts) {
    const row = table.locator(`tr[data-artifact="${a.name}"]`);
    await expect(row.locator('[data-col="type"]')).toHaveText(a.type);
    await expect(row.locator('[data-col="versions"]')).toHaveText(String(a.versions));
    await expect(row.locator('[data-col="latest"]')).toHaveText(`v${a.latest}`);
    const aliases = Object.entries(a.aliases)
      .filter(([x]) => x !== "latest")
      .sort(([x], [y]) => (x < y ? -1 : 1))
      .map(([x, v]) => `@${x} v${v}`);
    if (aliases.length) expect(await row.locator('[data-col="aliases"] .alias').allTextContents()).toEqual(aliases);
    else await expect(row.locator('[data-col="aliases"]')).toHaveText("—");
    await expectSize(row.locator('[data-col="size"]'), a.latest_size);
  }
  await expect(table.locator('tr[data-artifact="spirals"] [data-col="aliases"]')).toHaveText("@best v1");
  await screenshots(page, "artifacts");

  // One type: the API's answer for it, in the URL, and back to all.
  const models = await apiGet<Names>(`/api/v1/projects/${P}/artifacts?type=model`);
  const filter = page.getByTestId("type-filter");
  expect(await filter.locator(".seg-btn").allTextContents()).toEqual(["All", ...all.types]);
  await filter.locator('[data-type="model"]').click();
  await expect(page).toHaveURL(`/p/${P}/artifacts?type=model`);
  await expect(table.locator("tbody tr")).toHaveCount(models.artifacts.length);
  expect(await table.locator("tbody tr").evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.artifact))).toEqual(["mlp"]);
  await page.goBack();
  await expect(table.locator("tbody tr")).toHaveCount(all.artifacts.length);
});

test("a version's page: its header, metadata, description, files with the reference marker, the run that produced it and those that used it; the switcher opens another version", async ({ page, context }) => {
  const f = fixture();
  const v = await version("spirals", "best");
  expect(v.ref).toBe(f.dataset);
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  await page.goto(`/p/${P}/artifacts`);
  await page.getByTestId("artifacts-table").locator('tr[data-artifact="spirals"] .artifact-link').click();
  // The name alone opens its latest version: v1, which is @best too.
  await expect(page).toHaveURL(`/p/${P}/artifacts/spirals`);
  await expect(page.getByTestId("version-ref")).toHaveText("spirals:v1");
  expect(await page.getByTestId("version-aliases").locator(".alias").allTextContents()).toEqual(v.aliases.map((a) => `@${a}`));
  await expect(page.getByTestId("version-digest")).toHaveText(v.digest.slice(0, 12));
  await expect(page.getByTestId("version-digest")).toHaveAttribute("title", v.digest);
  await page.getByTestId("copy-digest").click();
  await expect.poll(() => page.evaluate(() => navigator.clipboard.readText())).toBe(v.digest);
  await expectSize(page.getByTestId("version-size"), v.size);
  await expect(page.getByTestId("version-producer").locator("a")).toHaveAttribute("href", `/p/${P}/run/${f.runs.a}`);
  await expect(page.getByTestId("version-producer")).toContainText("make-data");

  // Metadata: one row per key, nested values as JSON.
  const meta = page.getByTestId("version-metadata");
  const shownMeta = await meta.locator("tr").evaluateAll((trs) => Object.fromEntries(trs.map((tr) => [tr.querySelector(".key")?.textContent ?? "", tr.querySelector(".val")?.textContent ?? ""])));
  expect(shownMeta).toEqual(Object.fromEntries(Object.entries(v.metadata).map(([k, x]) => [k, typeof x === "string" ? x : JSON.stringify(x)])));
  await expect(page.getByTestId("version-description")).toHaveText("Two interleaved spirals, 500 points.");
  await expect(page.getByTestId("version-description").locator("strong")).toHaveText("spirals");

  // Files: the API's, by path, sizes and short hashes.
  const files = page.getByTestId("version-files").locator("tbody tr");
  await expect(files).toHaveCount(v.files.length);
  expect(await files.evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.path))).toEqual(v.files.map((x) => x.path));
  for (const file of v.files) {
    const row = page.locator(`tr[data-path="${file.path}"]`);
    await expect(row.locator('[data-col="hash"]')).toHaveText(file.hash.slice(0, 12));
    await expectSize(row.locator("td").nth(1), file.size);
    await expect(row.locator('[data-col="reference"]')).toHaveText("");
  }

  // Runs: A produced it, B used it; each links to its page.
  const producers = page.getByTestId("version-producers").locator("li");
  const consumers = page.getByTestId("version-consumers").locator("li");
  const byRole = (role: string) => v.runs.filter((r) => r.role === role).map((r) => r.id);
  expect(await producers.evaluateAll((li) => li.map((x) => (x as HTMLElement).dataset.run))).toEqual(byRole("output"));
  expect(await consumers.evaluateAll((li) => li.map((x) => (x as HTMLElement).dataset.run))).toEqual(byRole("input"));
  expect(byRole("output")).toEqual([f.runs.a]);
  expect(byRole("input")).toEqual([f.runs.b]);
  await expect(consumers.first().locator("a.run-ref")).toHaveAttribute("href", `/p/${P}/run/${f.runs.b}`);
  await expect(consumers.first()).toContainText("train-mlp");
  await screenshots(page, "artifact-version");

  // The switcher: every version, newest first; v0 opens.
  const list = await apiGet<{ versions: Version[] }>(`/api/v1/projects/${P}/artifacts/spirals`);
  await page.getByTestId("version-switcher").click();
  const items = page.getByTestId("version-list").locator(".version-item");
  await expect(items).toHaveCount(list.versions.length);
  expect(await items.evaluateAll((as) => as.map((a) => Number((a as HTMLElement).dataset.version)))).toEqual(list.versions.map((x) => x.version));
  expect(list.versions.map((x) => x.version)).toEqual([1, 0]);
  await expect(items.first()).toHaveClass(/active/);
  await items.last().click();
  await expect(page).toHaveURL(`/p/${P}/artifacts/spirals/v0`);
  await expect(page.getByTestId("version-ref")).toHaveText("spirals:v0");
  const v0 = await version("spirals", "v0");
  await expect(page.getByTestId("version-files").locator("tbody tr")).toHaveCount(v0.files.length);
  await expect(page.getByTestId("version-consumers")).toContainText("No run has used this version yet.");
});

test("files recorded in place are marked as references; a version of 1,200 files shows a page and the rest on demand", async ({ page }) => {
  const f = fixture();
  const [name, num] = f.reference.split(":");
  const ref = await version(name, num);
  expect(ref.files.length).toBeGreaterThan(0);
  expect(ref.files.every((x) => x.reference?.startsWith("file://"))).toBe(true);
  await page.goto(`/p/${P}/artifacts/${name}/${num}`);
  const marks = page.getByTestId("version-files").locator('[data-col="reference"] .badge');
  await expect(marks).toHaveCount(ref.files.length);
  await expect(marks.first()).toHaveText("reference");
  await expect(marks.first()).toHaveAttribute("title", `Recorded where it is, not copied: ${ref.files[0].reference}`);
  await expect(page.getByTestId("version-producer")).toHaveText("no run");

  const shards = await version("shards", "latest");
  expect(shards.files_total).toBe(1200);
  await page.goto(`/p/${P}/artifacts/shards`);
  const rows = page.getByTestId("version-files").locator("tbody tr");
  await expect(rows).toHaveCount(shards.files.length);
  expect(shards.files.length).toBe(1000);
  await expect(page.getByTestId("files-count")).toHaveText("1,000 of 1,200 files");
  await page.getByTestId("more-files").click();
  await expect(rows).toHaveCount(1200);
  await expect(rows.last()).toHaveAttribute("data-path", "part-01199.txt");
  await expect(page.getByTestId("more-files")).toHaveCount(0);
  await expect(page.getByTestId("files-count")).toHaveText("1,200 files");
});

test("the lineage graph: spirals → train-mlp → mlp → evaluate drawn left to right, every node and link the API's, the current node marked; a node opens its own graph", async ({ page }) => {
  const f = fixture();
  const root = `${P}/${f.dataset}`;
  const model = `${P}/${f.model}`;
  const g = await apiGet<Graph>(`/api/v1/projects/${P}/artifacts/spirals/versions/v1/lineage`);
  expect(g.root).toBe(root);
  const chain: [string, string][] = [
    [f.runs.a, root],
    [root, f.runs.b],
    [f.runs.b, model],
    [model, f.runs.c],
  ];
  expect(g.edges).toEqual(expect.arrayContaining(chain.map(([from, to]) => ({ from, to }))));

  await page.goto(`/p/${P}/artifacts/spirals/v1`);
  await page.locator('.tab[data-tab="lineage"]').click();
  await expect(page).toHaveURL(`/p/${P}/artifacts/spirals/v1?tab=lineage`);
  const graph = page.getByTestId("lineage-graph");
  await expect(graph).toBeVisible();
  const nodes = graph.locator(".lg-node");
  await expect(nodes).toHaveCount(g.nodes.length);
  const drawn = await nodes.evaluateAll((els) => els.map((e): [string, string] => [(e as SVGElement).dataset.nodeId ?? "", (e as SVGElement).dataset.kind ?? ""]));
  expect(new Map(drawn)).toEqual(new Map(g.nodes.map((n) => [n.id, n.kind])));
  const links = await graph.locator(".lg-edge").evaluateAll((els) => els.map((e) => `${(e as SVGElement).dataset.from}>${(e as SVGElement).dataset.to}`));
  expect(links.sort()).toEqual(g.edges.map((e) => `${e.from}>${e.to}`).sort());
  await expect(graph.locator('[data-current="true"]')).toHaveAttribute("data-node-id", root);
  await expect(page.getByTestId("lineage-counts")).toHaveText(`${g.nodes.filter((n) => n.kind === "artifact").length} artifact versions · ${g.nodes.filter((n) => n.kind === "run").length} runs · ${g.edges.length} links`);

  // Left to right, each link drawn from its source's right side to its
  // target's left side.
  const boxes = await Promise.all([f.runs.a, root, f.runs.b, model, f.runs.c].map((id) => box(page, id)));
  for (let i = 1; i < boxes.length; i++) expect(boxes[i].x).toBeGreaterThan(boxes[i - 1].x + boxes[i - 1].width);
  for (const [from, to] of chain) {
    const line = await graph.locator(`.lg-edge[data-from="${from}"][data-to="${to}"] .lg-line`).boundingBox();
    const [a, b] = [await box(page, from), await box(page, to)];
    expect(line, `${from} → ${to}`).not.toBeNull();
    if (!line) continue;
    expect(Math.abs(line.x - (a.x + a.width))).toBeLessThan(3);
    expect(Math.abs(line.x + line.width - b.x)).toBeLessThan(3);
  }
  // Node labels: the version's reference, the run's name.
  await expect(graph.locator(`[data-node-id="${model}"] .lg-label`)).toHaveText(f.model);
  await expect(graph.locator(`[data-node-id="${f.runs.b}"] .lg-label`)).toHaveText("train-mlp");
  await screenshots(page, "lineage");

  // A node opens its page, on its own graph: run B's, then the model's.
  await graph.locator(`[data-node-id="${f.runs.b}"]`).click();
  await expect(page).toHaveURL(`/p/${P}/run/${f.runs.b}?tab=lineage`);
  await expect(page.getByTestId("lineage-graph").locator('[data-current="true"]')).toHaveAttribute("data-node-id", f.runs.b);
  const runGraph = await apiGet<Graph>(`/api/v1/runs/${f.runs.b}/lineage`);
  await expect(page.getByTestId("lineage-graph").locator(".lg-node")).toHaveCount(runGraph.nodes.length);
  // B's graph holds what it recorded in place too.
  await expect(page.getByTestId("lineage-graph").locator(`[data-node-id="${P}/${f.reference}"]`)).toBeVisible();
  await page.getByTestId("lineage-graph").locator(`[data-node-id="${model}"]`).click();
  await expect(page).toHaveURL(`/p/${P}/artifacts/mlp/v0?tab=lineage`);
  await expect(page.getByTestId("version-ref")).toHaveText(f.model);
  await expect(page.getByTestId("lineage-graph").locator('[data-current="true"]')).toHaveAttribute("data-node-id", model);
});

test("a run's page lists the versions it used and logged, each linking to its page; a run without any shows no such section and an empty lineage", async ({ page }) => {
  const f = fixture();
  const io = await apiGet<{ inputs: Version[]; outputs: Version[] }>(`/api/v1/runs/${f.runs.b}/artifact-versions`);
  expect(io.inputs.map((v) => v.ref)).toEqual([f.dataset, f.reference]);
  expect(io.outputs.map((v) => v.ref)).toEqual([f.model]);
  await page.goto(`/p/${P}/run/${f.runs.b}`);
  const inputs = page.getByTestId("run-inputs").locator("tbody tr");
  const outputs = page.getByTestId("run-outputs").locator("tbody tr");
  await expect(inputs).toHaveCount(io.inputs.length);
  await expect(outputs).toHaveCount(io.outputs.length);
  expect(await inputs.evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.ref))).toEqual(io.inputs.map((v) => v.ref));
  expect(await outputs.evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.ref))).toEqual(io.outputs.map((v) => v.ref));
  for (const v of [...io.inputs, ...io.outputs]) {
    const row = page.locator(`#artifact-versions tr[data-ref="${v.ref}"]`);
    await expect(row.locator("a.version-ref")).toHaveAttribute("href", `/p/${P}/artifacts/${v.name}/v${v.version}`);
    await expect(row.locator(".type-badge")).toHaveText(v.type);
    expect(await row.locator('[data-col="aliases"] .alias').allTextContents()).toEqual(v.aliases.map((a) => `@${a}`));
  }
  await screenshots(page, "run-artifact-versions");
  await page.locator(`#artifact-versions tr[data-ref="${f.model}"] a.version-ref`).click();
  await expect(page).toHaveURL(`/p/${P}/artifacts/mlp/v0`);
  await expect(page.getByTestId("version-producer")).toContainText("train-mlp");
  await expect(page.getByTestId("version-consumers").locator("li")).toHaveCount(1);
  await expect(page.getByTestId("version-consumers").locator("li")).toHaveAttribute("data-run", f.runs.c);

  // The run page's link to its graph.
  await page.goto(`/p/${P}/run/${f.runs.b}`);
  await page.getByTestId("run-lineage-link").click();
  await expect(page).toHaveURL(`/p/${P}/run/${f.runs.b}?tab=lineage`);
  await expect(page.getByTestId("lineage-graph")).toBeVisible();

  // A run of another project that touched no artifact.
  const other = await apiGet<{ runs: { id: string; project: string }[] }>("/api/v1/projects/seeds/runs?limit=1");
  const plain = other.runs[0];
  await page.goto(`/p/${plain.project}/run/${plain.id}`);
  await expect(page.locator(".run-page")).toBeVisible();
  await expect(page.getByTestId("summary-table")).toBeVisible();
  await expect(page.locator("#artifact-versions")).toHaveCount(0);
  await page.goto(`/p/${plain.project}/run/${plain.id}?tab=lineage`);
  await expect(page.locator(".empty-title")).toHaveText("No lineage yet");
});

test("an artifact, a version or a project that is not there says so, with a way back", async ({ page }) => {
  await page.goto(`/p/${P}/artifacts/no-such-thing`);
  await expect(page.locator(".empty-title")).toHaveText(`No artifact no-such-thing in ${P}`);
  await expect(page.locator(".empty a.btn")).toHaveAttribute("href", `/p/${P}/artifacts`);
  await page.goto(`/p/${P}/artifacts/spirals/v99`);
  await expect(page.locator(".error-box")).toContainText("spirals:v99");
  // The name's versions, to pick one that is there.
  await expect(page.getByTestId("version-list").locator(".version-item")).toHaveCount(2);
  await page.getByTestId("version-list").locator('.version-item[data-version="0"]').click();
  await expect(page.getByTestId("version-ref")).toHaveText("spirals:v0");
  // A name outside the artifact alphabet is the server's 400, shown.
  await page.goto(`/p/${P}/artifacts/${encodeURIComponent("../../etc")}/v0`);
  await expect(page.locator(".error-box")).toContainText("may use only letters, digits");
  await page.goto("/p/no-such-project/artifacts");
  await expect(page.locator(".empty-title")).toHaveText("No project no-such-project");
});
