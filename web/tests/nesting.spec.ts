// Nested runs (issue 10): the runs table as a tree and a run page's parent
// and children, checked against the API. Projects: "gridsearch" (a real
// GridSearchCV under mlflow.sklearn.autolog(): a parent and its children),
// "nesting" (MLflow tags making a grandchild, a missing parent, a deleted
// parent, a run that is its own parent and two that are each other's;
// fixtures/mlflow_runs.py) and "nested" (263 runs nested with labbook's own
// parent=, more than the table's first page; fixtures/nested_runs.py).
import type { Page } from "@playwright/test";
import type { MlflowFixture } from "./global-setup";
import type { ApiRun } from "./helpers";
import { apiGet, expect, runs, screenshots, shown, test } from "./helpers";

type NRun = ApiRun & { parent: string | null; project: string; metrics: Record<string, { last: number | string }> };

function fixture(): MlflowFixture {
  return JSON.parse(process.env.LABBOOK_E2E_MLFLOW ?? "null") as MlflowFixture;
}

async function all(project: string, q: Record<string, string> = {}): Promise<NRun[]> {
  return (await runs(project, { limit: 10000, ...q })).runs as NRun[];
}

type Row = { id: string; depth: number; kids: number; mark: string | null; index: number };

/** Every row of the table, scrolling through it (the rows are virtualized). */
async function treeRows(page: Page): Promise<Row[]> {
  const scroller = page.getByTestId("runs-scroller");
  await expect(scroller).toHaveAttribute("data-tree", "1");
  const count = Number(await scroller.getAttribute("data-rows"));
  const seen = new Map<number, Row>();
  for (let top = 0; ; top += 300) {
    await scroller.evaluate((el, t) => (el.scrollTop = t), top);
    await page.evaluate(() => new Promise<void>((r) => requestAnimationFrame(() => requestAnimationFrame(() => r()))));
    const rows = await page.evaluate(() =>
      [...document.querySelectorAll<HTMLElement>(".tbody .tr[data-run]")].map((r) => ({
        id: r.dataset.run ?? "",
        depth: Number(r.dataset.depth),
        kids: Number(r.dataset.kids),
        mark: r.dataset.mark ?? null,
        index: Number(r.dataset.index),
      })),
    );
    for (const r of rows) seen.set(r.index, r);
    if (seen.size >= count || top > count * 36 + 600) break;
  }
  await scroller.evaluate((el) => (el.scrollTop = 0));
  return [...seen.values()].sort((a, b) => a.index - b.index);
}

/** The tree a list of runs in the API's order makes when no parent is
 * missing or cyclic: each root, then its children, in that order. */
function simpleTree(list: NRun[]): { id: string; depth: number }[] {
  const ids = new Set(list.map((r) => r.id));
  const out: { id: string; depth: number }[] = [];
  const walk = (id: string, depth: number) => {
    out.push({ id, depth });
    for (const c of list.filter((r) => r.parent === id)) walk(c.id, depth + 1);
  };
  for (const r of list) if (!r.parent || !ids.has(r.parent)) walk(r.id, 0);
  return out;
}

test("runs table: a GridSearch's children sit under their parent, counted; folding is in the URL; a sort orders children within their parent", async ({ page }) => {
  const list = await all("gridsearch");
  const parent = list.find((r) => r.name === "grid");
  if (!parent) throw new Error("no grid run");
  const children = await all("gridsearch", { filter: `parent = "${parent.id}"` });
  expect(children.length, "GridSearchCV's autolog logs child runs").toBeGreaterThanOrEqual(3);

  await page.goto("/p/gridsearch?charts=0");
  let rows = await treeRows(page);
  expect(rows.map((r) => ({ id: r.id, depth: r.depth }))).toEqual(simpleTree(list));
  const head = rows.find((r) => r.id === parent.id);
  expect(head?.kids).toBe(children.length);
  await expect(page.locator(`.tr[data-run="${parent.id}"] [data-testid="kids-count"]`)).toHaveText(`${children.length} children`);
  // The varying keys of the search (C, kernel) are columns; keys constant
  // across the children (break_ties) are not, though the parent lacks them.
  const cols = await page.locator(".thead .th").evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.col));
  expect(cols).toContain("config.C");
  expect(cols).toContain("config.kernel");
  expect(cols).not.toContain("config.break_ties");
  for (const c of children) {
    expect(shown(await page.locator(`.tr[data-run="${c.id}"] [data-col="config.C"]`).innerText())).toBe(Number(c.config.C));
    await expect(page.locator(`.tr[data-run="${c.id}"] [data-col="config.kernel"]`)).toHaveText(String(c.config.kernel));
  }
  await screenshots(page, "runs-tree");

  // Folding the parent hides its children, and the URL keeps it.
  await page.locator(`.tr[data-run="${parent.id}"] [data-testid="tree-toggle"]`).click();
  await expect(page).toHaveURL(new RegExp(`collapse=${parent.id}`));
  await expect(page.getByTestId("runs-scroller")).toHaveAttribute("data-rows", String(list.length - children.length));
  await page.reload();
  await expect(page.getByTestId("runs-scroller")).toHaveAttribute("data-rows", String(list.length - children.length));
  await expect(page.locator(`.tr[data-run="${children[0].id}"]`)).toHaveCount(0);
  await screenshots(page, "runs-tree-collapsed");
  await page.locator(`.tr[data-run="${parent.id}"] [data-testid="tree-toggle"]`).click();
  await expect(page).not.toHaveURL(/collapse=/);
  await expect(page.getByTestId("runs-scroller")).toHaveAttribute("data-rows", String(list.length));

  // Sorted by a metric: the children in the API's order for that sort.
  await page.locator('.th[data-col="metrics.mean_test_score"]').click();
  await expect(page).toHaveURL(/sort=-metrics.mean_test_score/);
  const sorted = await all("gridsearch", { sort: "-metrics.mean_test_score" });
  rows = await treeRows(page);
  expect(rows.map((r) => r.id)).toEqual(simpleTree(sorted).map((r) => r.id));
  const scores = rows.filter((r) => r.depth === 1).map((r) => Number(sorted.find((x) => x.id === r.id)?.metrics.mean_test_score.last));
  expect(scores).toEqual([...scores].sort((a, b) => b - a));
});

test("runs table: missing, deleted and self-named parents and a cycle of parents each end as a marked top-level row; nothing is lost or shown twice", async ({ page }) => {
  const ids = fixture().nesting;
  const list = await all("nesting");
  expect(list.map((r) => r.id)).not.toContain(ids["deleted-parent"]);

  // Newest first (the default): cycle-b was created last of the two, so the
  // cycle is cut above it.
  await page.goto("/p/nesting?charts=0");
  let rows = await treeRows(page);
  const byId = (r: Row[]) => new Map(r.map((x) => [x.id, x]));
  expect(rows.map((r) => r.id).sort()).toEqual(list.map((r) => r.id).sort());
  let m = byId(rows);
  expect(m.get(ids["orphan-missing"])).toMatchObject({ depth: 0, mark: "orphan" });
  expect(m.get(ids["orphan-deleted"])).toMatchObject({ depth: 0, mark: "orphan" });
  expect(m.get(ids["self-parent"])).toMatchObject({ depth: 0, mark: "self", kids: 0 });
  expect(m.get(ids["cycle-b"])).toMatchObject({ depth: 0, mark: "cycle", kids: 1 });
  expect(m.get(ids["cycle-a"])).toMatchObject({ depth: 1, mark: null });
  expect(m.get(ids.parent)).toMatchObject({ depth: 0, mark: null, kids: 3 });
  expect(m.get(ids["child-1"])).toMatchObject({ depth: 1, kids: 1 });
  expect(m.get(ids.grandchild)).toMatchObject({ depth: 2, kids: 0 });
  // A row's children follow it, its grandchild right under child-1.
  const at = (id: string) => rows.findIndex((r) => r.id === id);
  expect(at(ids.grandchild)).toBe(at(ids["child-1"]) + 1);
  expect(at(ids["cycle-a"])).toBe(at(ids["cycle-b"]) + 1);
  await expect(page.locator(`.tr[data-run="${ids["orphan-missing"]}"] .tree-mark`)).toHaveText("parent not listed");
  await expect(page.locator(`.tr[data-run="${ids["orphan-missing"]}"] .tree-mark`)).toHaveAttribute("title", /f{32}/);
  await screenshots(page, "runs-tree-hostile");

  // By name: cycle-a comes first, so the cycle is cut above it; parents
  // and children each in name order.
  await page.goto("/p/nesting?charts=0&sort=name");
  rows = await treeRows(page);
  m = byId(rows);
  expect(m.get(ids["cycle-a"])).toMatchObject({ depth: 0, mark: "cycle" });
  expect(m.get(ids["cycle-b"])).toMatchObject({ depth: 1 });
  const names = new Map(list.map((r) => [r.id, r.name]));
  expect(rows.map((r) => `${"  ".repeat(r.depth)}${names.get(r.id)}`)).toEqual([
    "cycle-a",
    "  cycle-b",
    "orphan-deleted",
    "orphan-missing",
    "parent",
    "  child-0",
    "  child-1",
    "    grandchild",
    "  child-2",
    "self-parent",
  ]);

  // A filter that leaves the parent out: its children stay, marked.
  await page.goto(`/p/nesting?charts=0&sort=name&filter=${encodeURIComponent('name != "parent"')}`);
  rows = await treeRows(page);
  m = byId(rows);
  for (const c of ["child-0", "child-1", "child-2"]) expect(m.get(ids[c])).toMatchObject({ depth: 0, mark: "orphan" });
  expect(m.get(ids.grandchild)).toMatchObject({ depth: 1 });
  expect(rows.length).toBe(list.length - 1);

  // Nothing nested among the matches: the flat table.
  await page.goto(`/p/nesting?charts=0&filter=${encodeURIComponent('name = "parent"')}`);
  await expect(page.getByTestId("runs-scroller")).toHaveAttribute("data-total", "1");
  await expect(page.getByTestId("runs-scroller")).not.toHaveAttribute("data-tree", "1");
});

test("runs table: a tree over more runs than a page holds places every child under its parent, in the sort's order", async ({ page }) => {
  const list = await all("nested", { sort: "-metrics.score" });
  expect(list.length).toBeGreaterThan(200);
  const requests: string[] = [];
  page.on("request", (r) => {
    if (r.url().includes("/api/v1/projects/nested/runs")) requests.push(r.url());
  });
  await page.goto("/p/nested?charts=0&sort=-metrics.score");
  const rows = await treeRows(page);
  expect(rows.map((r) => ({ id: r.id, depth: r.depth }))).toEqual(simpleTree(list));
  expect(rows.filter((r) => r.depth === 0 && r.kids === 80)).toHaveLength(3);
  // The first page, whether anything is nested (limit=1), then every run
  // in one request: no page fetched per scroll.
  expect(requests.filter((u) => u.includes("limit=10000")), requests.join("\n")).toHaveLength(1);
  expect(requests.filter((u) => /offset=[1-9]/.test(u)), "pages fetched while scrolling a tree").toEqual([]);
  // Within each sweep its trials by score, best first, as the API sorts.
  const sweep0 = list.find((r) => r.name === "sweep-0");
  const under = rows.filter((r) => sweep0 && list.find((x) => x.id === r.id)?.parent === sweep0.id).map((r) => Number(list.find((x) => x.id === r.id)?.metrics.score.last));
  expect(under).toHaveLength(80);
  expect(under).toEqual([...under].sort((a, b) => b - a));
});

test("run page: a parent lists its children side by side; a child links its parent, or says what is wrong with it", async ({ page }) => {
  const ids = fixture().nesting;
  const list = await all("nesting");
  const name = new Map(list.map((r) => [r.id, r.name]));

  await page.goto(`/p/nesting/run/${ids.parent}`);
  const table = page.getByTestId("children");
  const kids = await all("nesting", { filter: `parent = "${ids.parent}"`, sort: "created" });
  await expect(table.locator("tbody tr")).toHaveCount(kids.length);
  expect(await table.locator("tbody tr").evaluateAll((t) => t.map((r) => (r as HTMLElement).dataset.run))).toEqual(kids.map((k) => k.id));
  // The varying config (lr, depth), not the constant (optimizer), and the
  // metrics, each cell the API's value.
  const heads = await table.locator("thead th").evaluateAll((t) => t.map((h) => (h as HTMLElement).dataset.col ?? ""));
  expect(heads).toEqual(expect.arrayContaining(["config.lr", "config.depth", "metrics.val_acc", "metrics.loss"]));
  expect(heads).not.toContain("config.optimizer");
  for (const k of kids) {
    const row = table.locator(`tr[data-run="${k.id}"]`);
    expect(shown(await row.locator('[data-col="config.lr"]').innerText())).toBe(Number(k.config.lr));
    expect(shown(await row.locator('[data-col="metrics.val_acc"]').innerText())).toBeCloseToSig(Number(k.metrics.val_acc.last));
  }
  await expect(page.locator("section#children .card-head")).toContainText(`${kids.length} runs`);
  await screenshots(page, "run-children");

  // A child: its parent as a link that opens the parent.
  await page.goto(`/p/nesting/run/${ids.grandchild}`);
  const parent = page.getByTestId("parent");
  await expect(parent).toHaveAttribute("data-state", "ok");
  await expect(parent.locator("a")).toHaveText(name.get(ids["child-1"]) ?? "");
  await screenshots(page, "run-parent");
  await parent.locator("a").click();
  await expect(page).toHaveURL(new RegExp(`/p/nesting/run/${ids["child-1"]}$`));
  await expect(page.getByTestId("children").locator("tbody tr")).toHaveCount(1);

  // What can be wrong with a parent, each said in place.
  const cases: [string, string, RegExp][] = [
    ["orphan-missing", "missing", /f{32}\s*not found/],
    ["orphan-deleted", "deleted", /deleted-parent\s*deleted/],
    ["self-parent", "self", /its own parent/],
    ["cycle-a", "cycle", /cycle-b\s*cycle/],
  ];
  for (const [run, state, text] of cases) {
    await page.goto(`/p/nesting/run/${ids[run]}`);
    await expect(page.getByTestId("parent"), run).toHaveAttribute("data-state", state);
    await expect(page.getByTestId("parent"), run).toHaveText(text);
  }
  await screenshots(page, "run-parent-cycle");
  // The deleted parent's own page still opens, marked deleted.
  await page.goto(`/p/nesting/run/${ids["orphan-deleted"]}`);
  await page.getByTestId("parent").locator("a").click();
  await expect(page.locator(".run-title .badge.danger")).toHaveText("deleted");
  // A run that is its own parent is not listed as its own child.
  await page.goto(`/p/nesting/run/${ids["self-parent"]}`);
  await expect(page.getByTestId("parent")).toBeVisible();
  await expect(page.getByTestId("children")).toHaveCount(0);
  const self = await apiGet<NRun>(`/api/v1/runs/${ids["self-parent"]}`);
  expect(self.parent).toBe(ids["self-parent"]);
});
