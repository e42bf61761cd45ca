import { api } from "../api";
import { fmtDate, fmtRelative, plural } from "../format";
import { projectPath } from "../router";
import { Empty, ErrorBox, Loading, useAsync, useTicker } from "./common";

export function ProjectsPage() {
  const projects = useAsync(() => api.projects(), []);
  useTicker(30000);
  return (
    <div class="page narrow">
      <div class="page-head">
        <h1>Projects</h1>
        {projects.data && <span class="muted" data-testid="project-count">{plural(projects.data.projects.length, "project")}</span>}
      </div>
      {projects.error ? (
        <ErrorBox error={projects.error} retry={projects.reload} />
      ) : !projects.data ? (
        <Loading />
      ) : projects.data.projects.length === 0 ? (
        <Empty title="No runs yet">
          Log one from Python with <code>labbook.init(project="mnist")</code>, or wrap any program with{" "}
          <code>labbook run -- python train.py</code>.
        </Empty>
      ) : (
        <div class="project-grid" data-testid="projects">
          {projects.data.projects.map((p) => (
            <a class="project-card" href={projectPath(p.name)} key={p.name} data-project={p.name}>
              <div class="project-name">{p.name}</div>
              <div class="project-stats">
                <div>
                  <div class="stat num">{p.runs.toLocaleString("en-US")}</div>
                  <div class="stat-label">{p.runs === 1 ? "run" : "runs"}</div>
                </div>
                <div>
                  <div class={`stat num ${p.running ? "running-text" : ""}`}>
                    {p.running > 0 && <span class="live-dot" />}
                    {p.running}
                  </div>
                  <div class="stat-label">running</div>
                </div>
                <div>
                  <div class="stat" title={fmtDate(p.last_activity_ms)}>
                    {fmtRelative(p.last_activity_ms) || "—"}
                  </div>
                  <div class="stat-label">last activity</div>
                </div>
              </div>
            </a>
          ))}
        </div>
      )}
      {projects.data && projects.data.projects.length > 0 && (
        <p class="muted hint-foot">
          A new project appears with its first run: <code>labbook.init(project="name")</code> or <code>labbook run --project name -- …</code>
        </p>
      )}
    </div>
  );
}
