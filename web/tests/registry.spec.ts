// What MLflow clients log beyond config and metrics (issue 10), on the
// dashboard and against the API: a run's key/value tags (MLflow's own
// folded), datasets and logged models; the model registry's pages and the
// registry links the mlflow client prints. The projects come from real
// client code through `labbook serve` (fixtures/mlflow_runs.py): a
// GridSearchCV autolog, and a model registered twice with aliases.
import { apiGet, expect, runByName, screenshots, test } from "./helpers";

type Detail = {
  id: string;
  project: string;
  kv_tags: Record<string, string>;
  inputs: { name: string; digest: string; source_type: string; source: string; tags?: Record<string, string> }[];
  outputs: { model_id: string; name: string; step: number; params: Record<string, string>; registered: { name: string; version: number }[] }[];
};
type Version = { version: number; stage: string | null; source: string | null; run_id: string | null; run_name: string | null; project: string | null; model_id: string | null; description: string | null; tags: Record<string, string>; aliases: string[] };
type Registered = { name: string; description: string | null; aliases: Record<string, number>; updated_ms: number; versions: Version[] };

test("a GridSearch parent's page: its tags with MLflow's own folded, its dataset, its logged models with their params", async ({ page }) => {
  const grid = await runByName("gridsearch", "grid");
  const r = await apiGet<Detail>(`/api/v1/runs/${grid.id}`);
  await page.goto(`/p/gridsearch/run/${grid.id}`);

  const keys = Object.keys(r.kv_tags).sort();
  const system = keys.filter((k) => k.startsWith("mlflow."));
  const user = keys.filter((k) => !k.startsWith("mlflow."));
  expect(user).toEqual(expect.arrayContaining(["estimator_class", "estimator_name"]));
  expect(system.length).toBeGreaterThan(0);
  const userTable = page.getByTestId("user-tags");
  await expect(userTable.locator("tr")).toHaveCount(user.length);
  expect(await userTable.locator("tr").evaluateAll((t) => t.map((x) => (x as HTMLElement).dataset.key))).toEqual(user);
  for (const k of user) await expect(userTable.locator(`tr[data-key="${k}"] .tag-val`)).toHaveText(r.kv_tags[k]);
  await expect(page.getByTestId("system-tags")).toHaveCount(0);
  const toggle = page.getByTestId("system-tags-toggle");
  await expect(toggle).toHaveText(`▸ system tags (${system.length})`);
  await toggle.click();
  for (const k of system) await expect(page.getByTestId("system-tags").locator(`tr[data-key="${k}"] .tag-val`)).toHaveText(r.kv_tags[k]);

  // The dataset the search was fit on, with its context.
  expect(r.inputs.length).toBeGreaterThan(0);
  const ds = page.getByTestId("datasets");
  await expect(ds.locator("tbody tr")).toHaveCount(r.inputs.length);
  for (const [i, d] of r.inputs.entries()) {
    const row = ds.locator("tbody tr").nth(i);
    await expect(row.locator(".dataset-name")).toHaveText(d.name);
    await expect(row.locator('[data-col="digest"]')).toHaveText(d.digest);
    await expect(row.locator('[data-col="source"] .badge')).toHaveText(d.source_type);
    await expect(row.locator('[data-col="context"]')).toHaveText(d.tags?.["mlflow.data.context"] ?? "—");
  }
  await expect(ds.locator('[data-col="context"]').first()).toHaveText("train");

  // The models it logged, each with its params on demand and its files.
  const out = page.getByTestId("outputs");
  expect(r.outputs.length).toBeGreaterThanOrEqual(1);
  for (const m of r.outputs) {
    const row = out.locator(`tr[data-model-id="${m.model_id}"]`);
    await expect(row.locator("td").first()).toContainText(m.name);
    await expect(row.locator("td").nth(1)).toHaveText(m.model_id);
    await expect(row.getByTestId("model-files")).toHaveAttribute("href", `/p/gridsearch/run/${grid.id}?tab=artifacts&model=${m.model_id}`);
  }
  const best = r.outputs.find((m) => m.name === "best_estimator") ?? r.outputs[0];
  await out.locator(`tr[data-model-id="${best.model_id}"] button`).click();
  const params = out.locator(".params-row tr");
  await expect(params).toHaveCount(Object.keys(best.params).length);
  const shownParams = await params.evaluateAll((trs) => Object.fromEntries(trs.map((tr) => [tr.querySelector(".key")?.textContent ?? "", tr.querySelector(".val")?.textContent ?? ""])));
  expect(shownParams).toEqual(best.params);
  // Its metrics are all logged once: values, and no axis controls for charts it has not got.
  await expect(page.getByTestId("values-card")).toBeVisible();
  await expect(page.getByTestId("chart-controls")).toHaveCount(0);
  await screenshots(page, "run-mlflow-parent");
});

test("registry: the models page and a model's versions, each value the API's; versions link to the run that made them and to its files", async ({ page }) => {
  const { models } = await apiGet<{ models: Registered[] }>("/api/v1/models");
  expect(models.length).toBeGreaterThan(0);
  await page.goto("/p/gridsearch");
  await page.getByTestId("nav-models").click();
  await expect(page).toHaveURL(/\/models$/);
  const table = page.getByTestId("models-table");
  await expect(table.locator("tbody tr")).toHaveCount(models.length);
  for (const m of models) {
    const row = table.locator(`tr[data-model="${m.name}"]`);
    await expect(row.locator(".model-link")).toHaveText(m.name);
    await expect(row.locator(".desc-cell")).toHaveText(m.description ?? "—");
    await expect(row.locator('[data-col="latest"]')).toHaveText(`v${m.versions[0].version}`);
    const aliases = Object.entries(m.aliases).sort(([a], [b]) => (a < b ? -1 : 1));
    expect(await row.locator('[data-col="aliases"] .alias').allTextContents()).toEqual(aliases.map(([a, v]) => `@${a} v${v}`));
  }
  await screenshots(page, "models");

  const m = models.find((x) => x.name === "registry-model");
  if (!m) throw new Error("no registry-model");
  const one = await apiGet<Registered>(`/api/v1/models/${m.name}`);
  // The fixture moved @champion from version 1 to 2.
  expect(one.aliases).toEqual({ champion: 2, challenger: 2 });
  await table.locator(`tr[data-model="${m.name}"] .model-link`).click();
  await expect(page).toHaveURL(`/models/${m.name}`);
  await expect(page.getByTestId("model-description")).toHaveText(one.description ?? "");
  const versions = page.getByTestId("versions-table").locator("tbody tr");
  expect(await versions.evaluateAll((t) => t.map((x) => Number((x as HTMLElement).dataset.version)))).toEqual(one.versions.map((v) => v.version));
  expect(one.versions.map((v) => v.version)).toEqual([...one.versions.map((v) => v.version)].sort((a, b) => b - a));
  for (const v of one.versions) {
    const row = page.locator(`tr[data-version="${v.version}"]`);
    expect(await row.locator('[data-col="aliases"] .alias').allTextContents()).toEqual([...v.aliases].sort().map((a) => `@${a}`));
    await expect(row.locator('[data-col="stage"]')).toHaveText(v.stage ?? "—");
    const tags = Object.entries(v.tags).map(([k, x]) => `${k}: ${x}`);
    if (tags.length) expect(await row.locator('[data-col="tags"] .tag').allInnerTexts()).toEqual(tags);
    else await expect(row.locator('[data-col="tags"]')).toHaveText("—");
    await expect(row.locator('[data-col="source"]')).toContainText(v.source ?? "");
    await expect(row.locator('[data-col="run"] a')).toHaveAttribute("href", `/p/${v.project}/run/${v.run_id}`);
    await expect(row.locator('[data-col="run"] a')).toContainText(v.run_name ?? "");
  }
  await expect(page.locator('tr[data-version="2"] [data-col="tags"]')).toHaveText("validated: yes");
  await screenshots(page, "model");

  // The version's run, and back through its Models list to the registry.
  const v2 = one.versions.find((v) => v.version === 2) as Version;
  await page.locator('tr[data-version="2"] [data-col="run"] a').click();
  await expect(page).toHaveURL(`/p/${v2.project}/run/${v2.run_id}`);
  const detail = await apiGet<Detail>(`/api/v1/runs/${v2.run_id}`);
  const regs = detail.outputs.flatMap((o) => o.registered);
  expect(regs).toEqual(expect.arrayContaining([{ name: m.name, version: 1 }, { name: m.name, version: 2 }]));
  const links = page.getByTestId("outputs").locator('[data-col="registered"] a');
  await expect(links).toHaveCount(regs.length);
  expect(await links.evaluateAll((as) => as.map((a) => a.getAttribute("href")))).toEqual(regs.map((r) => `/models/${r.name}/versions/${r.version}`));
  await links.first().click();
  await expect(page).toHaveURL(`/models/${m.name}/versions/${regs[0].version}`);
  await expect(page.locator(`tr[data-version="${regs[0].version}"]`)).toHaveClass(/highlight/);
  await screenshots(page, "model-version");

  // A version's files: its logged model's MLmodel and input example.
  await page.locator('tr[data-version="2"] [data-testid="version-files"]').click();
  await expect(page).toHaveURL(new RegExp(`tab=artifacts&model=${v2.model_id}`));
  await expect(page.getByTestId("model-card")).toBeVisible();
});

test("the registry links the mlflow client prints open the model's page; a model or version that is not there says so", async ({ page }) => {
  await page.goto("/#/models/registry-model/versions/1");
  await expect(page).toHaveURL(/\/models\/registry-model\/versions\/1$/);
  await expect(page.locator('tr[data-version="1"]')).toHaveClass(/highlight/);
  await expect(page.locator("h1")).toHaveText("registry-model");
  await page.goto("/#/models/registry-model");
  await expect(page).toHaveURL(/\/models\/registry-model$/);
  await expect(page.getByTestId("versions-table")).toBeVisible();
  // Names with characters a URL must escape survive the trip.
  await page.goto(`/#/models/${encodeURIComponent("no such/model")}`);
  await expect(page).toHaveURL(/\/models\/no%20such%2Fmodel$/);
  await expect(page.locator(".empty-title")).toHaveText("No model no such/model");
  await page.goto("/models/registry-model/versions/99");
  await expect(page.locator(".error-box")).toContainText("No version 99");
  await expect(page.getByTestId("versions-table")).toBeVisible();
});
