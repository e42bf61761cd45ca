import { listParam, projectPath, withParams } from "../router";
import { RunCharts } from "./RunsPage";

export function ChartsPage({ project, params }: { project: string; params: URLSearchParams }) {
  const selected = listParam(params, "runs");
  const filter = params.get("filter") ?? "";
  return (
    <div class="page">
      <div class="page-head">
        <h1>Charts</h1>
        <span class="muted">
          {selected.length ? `${selected.length} selected run${selected.length > 1 ? "s" : ""}` : `the 10 most recent runs${filter ? " matching the filter" : ""}`} ·{" "}
          <a href={projectPath(project) + withParams({ runs: selected.join(",") || null, filter: filter || null }, "")}>choose runs in the table</a>
        </span>
      </div>
      <RunCharts project={project} params={params} selectedIds={selected} filter={filter} compact={false} />
    </div>
  );
}
