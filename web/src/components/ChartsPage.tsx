import { plural } from "../format";
import { listParam, projectPath, withParams } from "../router";
import { RunCharts } from "./RunsPage";

export function ChartsPage({ project, params }: { project: string; params: URLSearchParams }) {
  const selected = listParam(params, "runs");
  const filter = params.get("filter") ?? "";
  return (
    <div class="page">
      <div class="page-head">
        <h1>Charts</h1>
        {selected.length > 0 && (
          <span class="muted">
            {plural(selected.length, "selected run")} ·{" "}
            <a href={projectPath(project) + withParams({ runs: selected.join(","), filter: filter || null }, "")}>change the selection in the table</a>
          </span>
        )}
      </div>
      <RunCharts project={project} params={params} selectedIds={selected} filter={filter} compact={false} />
    </div>
  );
}
