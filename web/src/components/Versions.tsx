// Versioned artifacts (issue 11): a project's artifacts, filterable by type,
// and a version's page: its header, metadata, description, files, the runs
// that produced and used it, a switcher among the name's versions, and its
// lineage graph. Loaded on first visit (its own chunk).
import { useEffect, useLayoutEffect, useState } from "preact/hooks";
import type { ArtifactName, ArtifactVersions, RunRef, VersionDetail, VersionFile, VersionRun } from "../api";
import { ApiError, api } from "../api";
import { fmtBytes, fmtDate, fmtRelative, plural } from "../format";
import { artifactPath, projectPath, runPath, setParams, withParams } from "../router";
import { Empty, ErrorBox, Loading, Markdown, Section, StatusPill, toast, useAsync, useDismiss } from "./common";
import { LineagePanel } from "./RunExtras";
import "./versions.css";

/** `dataset`, `model`, or `other` for a type without its own color. */
function typeKey(type: string): string {
  return type === "dataset" || type === "model" ? type : "other";
}

export function TypeBadge({ type }: { type: string }) {
  return <span class={`badge type-badge type-${typeKey(type)}`}>{type}</span>;
}

function bytes(n: number): string {
  return fmtBytes(n) || "0 B";
}

export function ArtifactsPage({ project, params }: { project: string; params: URLSearchParams }) {
  const type = params.get("type") || null;
  const names = useAsync((signal) => api.artifactNames(project, type, signal), [project, type ?? ""]);
  if (names.error) {
    if (names.error instanceof ApiError && names.error.status === 404)
      return (
        <div class="page">
          <Empty title={`No project ${project}`}>
            <a class="btn" href="/">
              All projects
            </a>
          </Empty>
        </div>
      );
    return <div class="page"><ErrorBox error={names.error} retry={names.reload} /></div>;
  }
  const d = names.data;
  return (
    <div class="page artifacts-page">
      <div class="page-head">
        <h1>Artifacts</h1>
        {d && <span class="muted num">{plural(d.total, type ? `${type} artifact` : "artifact")}</span>}
        {d && d.types.length > 1 && (
          <div class="seg type-filter" role="group" aria-label="Filter by type" data-testid="type-filter">
            <button class={`seg-btn ${type === null ? "active" : ""}`} aria-pressed={type === null} onClick={() => setParams({ type: null }, { push: true })}>
              All
            </button>
            {d.types.map((t) => (
              <button key={t} class={`seg-btn ${type === t ? "active" : ""}`} aria-pressed={type === t} data-type={t} onClick={() => setParams({ type: t }, { push: true })}>
                {t}
              </button>
            ))}
          </div>
        )}
      </div>
      {!d ? (
        <Loading />
      ) : d.artifacts.length === 0 ? (
        type ? (
          <Empty title={`No ${type} artifacts in ${project}`}>
            <a href={artifactPath(project)}>Show every type</a>
          </Empty>
        ) : (
          <Empty title={`No artifacts in ${project} yet`}>
            <p>Version a dataset, a model or any folder from a run:</p>
            <pre class="mono snippet">{`art = labbook.Artifact("spirals", type="dataset")
art.add_dir("data/")
run.log_artifact(art, aliases=["best"])
run.use_artifact("spirals:latest")`}</pre>
          </Empty>
        )
      ) : (
        <div class="card">
          <table class="table artifacts-table" data-testid="artifacts-table">
            <thead>
              <tr>
                <th>Name</th>
                <th>Type</th>
                <th class="num">Versions</th>
                <th>Latest</th>
                <th>Aliases</th>
                <th class="num">Size</th>
                <th>Updated</th>
              </tr>
            </thead>
            <tbody>
              {d.artifacts.map((a) => (
                <ArtifactRow key={a.name} project={project} a={a} />
              ))}
            </tbody>
          </table>
          {d.total > d.artifacts.length && <p class="muted pad table-note">The first {d.artifacts.length} of {d.total} are shown.</p>}
        </div>
      )}
    </div>
  );
}

function ArtifactRow({ project, a }: { project: string; a: ArtifactName }) {
  const aliases = Object.entries(a.aliases)
    .filter(([alias]) => alias !== "latest")
    .sort(([x], [y]) => (x < y ? -1 : 1));
  return (
    <tr data-artifact={a.name}>
      <td>
        <a class="artifact-link" href={artifactPath(project, a.name)}>
          <TypeGlyph type={a.type} />
          {a.name}
        </a>
      </td>
      <td data-col="type">
        <TypeBadge type={a.type} />
      </td>
      <td class="num" data-col="versions">
        {a.versions}
      </td>
      <td data-col="latest">{a.latest === null ? <span class="muted">none</span> : <a href={artifactPath(project, a.name, a.latest)}>v{a.latest}</a>}</td>
      <td data-col="aliases">
        {aliases.length ? (
          <span class="tags">
            {aliases.map(([alias, v]) => (
              <a class="alias" key={alias} href={artifactPath(project, a.name, v)} title={`@${alias} is v${v}`}>
                @{alias} <span class="alias-v">v{v}</span>
              </a>
            ))}
          </span>
        ) : (
          <span class="muted">—</span>
        )}
      </td>
      <td class="num" data-col="size">
        {a.latest === null ? <span class="muted">—</span> : bytes(a.latest_size)}
      </td>
      <td data-col="updated" title={fmtDate(a.updated_ms)}>
        {fmtRelative(a.updated_ms)}
      </td>
    </tr>
  );
}

function TypeGlyph({ type }: { type: string }) {
  const key = typeKey(type);
  return (
    <svg class={`type-glyph type-${key}`} width="14" height="14" viewBox="0 0 16 17" aria-hidden="true">
      {key === "dataset" ? (
        <>
          <ellipse cx="8" cy="3.5" rx="7" ry="3" />
          <path d="M1 3.5v9c0 1.7 3.1 3 7 3s7-1.3 7-3v-9M1 8c0 1.7 3.1 3 7 3s7-1.3 7-3" />
        </>
      ) : key === "model" ? (
        <path d="M8 0.8l7 4v7.4l-7 4-7-4V4.8zM1 4.8l7 4 7-4M8 8.8v7.4" />
      ) : (
        <path d="M2.5 0.8h7l4 4v10.4h-11zM9.5 0.8v4h4" />
      )}
    </svg>
  );
}

const TABS = [
  ["overview", "Overview"],
  ["lineage", "Lineage"],
] as const;

export function VersionPage({ project, name, version, params }: { project: string; name: string; version?: string; params: URLSearchParams }) {
  const selector = version ?? "latest";
  const detail = useAsync((signal) => api.artifactVersion(project, name, selector, 0, signal), [project, name, selector]);
  const versions = useAsync((signal) => api.artifactVersions(project, name, signal), [project, name]);
  const tab = params.get("tab") === "lineage" ? "lineage" : "overview";
  const crumbs = (
    <div class="crumbs">
      <a href={projectPath(project)}>{project}</a>
      <span class="muted">/</span>
      <a href={artifactPath(project)}>Artifacts</a>
      <span class="muted">/</span>
      <span>{name}</span>
    </div>
  );
  if (detail.error) {
    const missing = detail.error instanceof ApiError && detail.error.status === 404;
    const list = versions.data;
    if (missing && versions.error instanceof ApiError && versions.error.status === 404)
      return (
        <div class="page">
          {crumbs}
          <Empty title={`No artifact ${name} in ${project}`}>
            <p>No artifact of this project has this name.</p>
            <a class="btn" href={artifactPath(project)}>
              The artifacts of {project}
            </a>
          </Empty>
        </div>
      );
    return (
      <div class="page">
        {crumbs}
        <ErrorBox error={detail.error} retry={detail.reload} />
        {missing && list && (
          <Section title={`The versions of ${name}`}>
            <VersionList project={project} list={list} current={null} />
          </Section>
        )}
      </div>
    );
  }
  const v = detail.data;
  if (!v) return <div class="page">{crumbs}<Loading /></div>;
  return (
    <div class="page version-page" data-ref={v.ref} data-testid="version-page">
      {crumbs}
      <div class="run-head">
        <div class="run-title version-title">
          <TypeGlyph type={v.type} />
          <h1 data-testid="version-ref">
            {v.name}
            <span class="ref-version">:v{v.version}</span>
          </h1>
          <TypeBadge type={v.type} />
          {v.aliases.length > 0 && (
            <span class="tags" data-testid="version-aliases">
              {v.aliases.map((a) => (
                <span class="alias" key={a}>
                  @{a}
                </span>
              ))}
            </span>
          )}
          {v.deleted_ms !== null && <span class="badge danger">deleted</span>}
        </div>
        <VersionSwitcher project={project} v={v} list={versions.data} />
      </div>
      <dl class="facts">
        <div class="fact">
          <dt>Digest</dt>
          <dd>
            <Digest digest={v.digest} />
          </dd>
        </div>
        <div class="fact">
          <dt>Size</dt>
          <dd class="num" data-testid="version-size" title={`${v.size.toLocaleString("en-US")} bytes`}>
            {bytes(v.size)}
          </dd>
        </div>
        <div class="fact">
          <dt>Files</dt>
          <dd class="num">{v.file_count.toLocaleString("en-US")}</dd>
        </div>
        <div class="fact">
          <dt>Created</dt>
          <dd title={fmtDate(v.created_ms)}>{fmtRelative(v.created_ms)}</dd>
        </div>
        <div class="fact">
          <dt>Produced by</dt>
          <dd data-testid="version-producer">{v.producer ? <RunLink run={v.producer} home={project} /> : <span class="muted">no run</span>}</dd>
        </div>
      </dl>
      {v.deleted_ms !== null && (
        <div class="error-box" role="status">
          <div>
            <strong>Deleted {fmtRelative(v.deleted_ms)}</strong>
            <div class="error-msg">{v.purged ? "Its files were freed by labbook gc; only its record stays." : "Its files stay until labbook gc frees them."}</div>
          </div>
        </div>
      )}
      <nav class="tabs" role="tablist">
        {TABS.map(([k, label]) => (
          <button key={k} role="tab" class={`tab ${tab === k ? "active" : ""}`} aria-selected={tab === k} data-tab={k} onClick={() => setParams({ tab: k === "overview" ? null : k }, { push: true })}>
            {label}
          </button>
        ))}
      </nav>
      {tab === "lineage" ? <LineagePanel source={{ kind: "version", project, name, version: `v${v.version}` }} /> : <Overview project={project} v={v} />}
    </div>
  );
}

function Overview({ project, v }: { project: string; v: VersionDetail }) {
  const produced = v.runs.filter((r) => r.role === "output");
  const used = v.runs.filter((r) => r.role === "input");
  return (
    <div class="stack">
      {v.description && (
        <Section title="Description">
          <div data-testid="version-description">
            <Markdown text={v.description} />
          </div>
        </Section>
      )}
      <div class="two-col">
        <Section title="Metadata" right={<span class="muted num">{plural(Object.keys(v.metadata ?? {}).length, "key")}</span>}>
          <Metadata metadata={v.metadata} />
        </Section>
        <Section title="Runs" right={<span class="muted num">{plural(v.runs_total, "link")}</span>}>
          <RunList title="Produced by" runs={produced} home={project} empty="No run logged this version." testid="version-producers" />
          <RunList title="Used by" runs={used} home={project} empty="No run has used this version yet." testid="version-consumers" />
          {v.runs_left_out > 0 && <p class="muted small">…and {v.runs_left_out} more links, not listed.</p>}
        </Section>
      </div>
      <Files project={project} v={v} />
    </div>
  );
}

function Metadata({ metadata }: { metadata: VersionDetail["metadata"] }) {
  const keys = Object.keys(metadata ?? {}).sort();
  if (!metadata || !keys.length) return <p class="muted">No metadata. Pass <code>metadata=&#123;…&#125;</code> to <code>labbook.Artifact</code>.</p>;
  return (
    <table class="table kv" data-testid="version-metadata">
      <tbody>
        {keys.map((k) => {
          const value = metadata[k];
          return (
            <tr key={k} data-key={k}>
              <td class="mono key">{k}</td>
              <td class="mono val">{typeof value === "string" ? value : JSON.stringify(value)}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function RunLink({ run, home }: { run: RunRef; home: string }) {
  if (!run.project || !run.name)
    return (
      <span class="mono" title="This run is no longer in the store">
        {run.id} <span class="badge warn">not found</span>
      </span>
    );
  return (
    <a class="run-ref" href={runPath(run.project, run.id)} title={`run ${run.id} in ${run.project}`}>
      {run.name}
      <span class="muted mono"> {run.id}</span>
      {run.project !== home && <span class="muted"> in {run.project}</span>}
      {run.deleted && <span class="badge danger">deleted</span>}
    </a>
  );
}

function RunList({ title, runs, home, empty, testid }: { title: string; runs: VersionRun[]; home: string; empty: string; testid: string }) {
  return (
    <div class="version-runs" data-testid={testid}>
      <div class="mini-head">{title}</div>
      {runs.length === 0 ? (
        <p class="muted small">{empty}</p>
      ) : (
        <ul class="run-list">
          {runs.map((r) => (
            <li key={`${r.id}-${r.role}`} data-run={r.id}>
              {r.status && <StatusPill status={r.status} />}
              <RunLink run={r} home={home} />
              <span class="muted small push-right" title={fmtDate(r.created_ms)}>
                {fmtRelative(r.created_ms)}
              </span>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** The version's files, a page at a time: the first page comes with the
 * version, "Show more" asks for the next. */
function Files({ project, v }: { project: string; v: VersionDetail }) {
  const [more, setMore] = useState<VersionFile[]>([]);
  const [busy, setBusy] = useState(false);
  useEffect(() => setMore([]), [v.digest, v.version]);
  const files = more.length ? [...v.files, ...more] : v.files;
  const left = v.files_total - v.files_offset - files.length;
  const next = async () => {
    setBusy(true);
    try {
      // By number: an alias moved meanwhile must not mix two versions' files.
      const page = await api.artifactVersion(project, v.name, `v${v.version}`, v.files_offset + files.length);
      setMore((m) => [...m, ...page.files]);
    } catch (e) {
      toast(`Could not load more files: ${(e as Error).message}`);
    } finally {
      setBusy(false);
    }
  };
  const references = files.filter((f) => f.reference).length;
  return (
    <Section
      title="Files"
      right={
        <span class="muted num" data-testid="files-count">
          {left > 0 ? `${files.length.toLocaleString("en-US")} of ${v.files_total.toLocaleString("en-US")} files` : plural(v.files_total, "file")}
          {references > 0 && ` · ${references} by reference`}
        </span>
      }
    >
      {v.files_total === 0 ? (
        <p class="muted">{v.purged ? "The files of this deleted version were freed." : "This version holds no files."}</p>
      ) : (
        <div class="files-wrap">
          <table class="table version-files" data-testid="version-files">
            <thead>
              <tr>
                <th>Path</th>
                <th class="num">Size</th>
                <th>Hash</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {files.map((f) => (
                <tr key={f.path} data-path={f.path}>
                  <td class="mono path-cell">{f.path}</td>
                  <td class="num" title={`${f.size.toLocaleString("en-US")} bytes`}>
                    {bytes(f.size)}
                  </td>
                  <td class="mono muted" data-col="hash" title={f.hash}>
                    {f.hash.slice(0, 12)}
                  </td>
                  <td data-col="reference">
                    {f.reference && (
                      <span class="badge subtle" title={`Recorded where it is, not copied: ${f.reference}`}>
                        reference
                      </span>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {left > 0 && (
        <div class="row-gap more-files">
          <button class="btn btn-sm" onClick={next} disabled={busy} data-testid="more-files">
            {busy ? "Loading…" : `Show ${Math.min(left, 1000).toLocaleString("en-US")} more`}
          </button>
          <span class="muted small">{left.toLocaleString("en-US")} not shown</span>
        </div>
      )}
    </Section>
  );
}

function Digest({ digest }: { digest: string }) {
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(digest);
      toast("Digest copied");
    } catch {
      // No clipboard (a page not on localhost over plain HTTP): the full
      // digest is selectable in the tooltip's stead.
      toast(`Digest: ${digest}`, undefined, 15000);
    }
  };
  return (
    <span class="digest">
      <span class="mono" title={digest} data-testid="version-digest">
        {digest.slice(0, 12)}
      </span>
      <button class="icon-btn copy-btn" onClick={copy} title="Copy the full digest" aria-label="Copy the full digest" data-testid="copy-digest">
        <svg width="13" height="13" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">
          <rect x="9" y="9" width="12" height="12" rx="2" />
          <path d="M5 15H4a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2h9a2 2 0 0 1 2 2v1" />
        </svg>
      </button>
    </span>
  );
}

function VersionSwitcher({ project, v, list }: { project: string; v: VersionDetail; list: ArtifactVersions | undefined }) {
  const [open, setOpen] = useState(false);
  const ref = useDismiss(open, () => setOpen(false));
  return (
    <div class="switcher version-switcher" ref={ref}>
      <button class="btn btn-sm" onClick={() => setOpen(!open)} aria-haspopup="listbox" aria-expanded={open} data-testid="version-switcher">
        v{v.version}
        <span class="muted">{list ? `of ${list.total}` : ""}</span>
        <span class="chev">▾</span>
      </button>
      {open && (
        <div class="popover version-pop" role="listbox">
          <div class="pop-group">Versions of {v.name}</div>
          {list ? <VersionList project={project} list={list} current={v.version} onPick={() => setOpen(false)} /> : <div class="pop-item muted">Loading…</div>}
        </div>
      )}
    </div>
  );
}

function VersionList({ project, list, current, onPick }: { project: string; list: ArtifactVersions; current: number | null; onPick?: () => void }) {
  // The current version is in view when the list opens.
  const [el, setEl] = useState<HTMLElement | null>(null);
  useLayoutEffect(() => el?.scrollIntoView({ block: "nearest" }), [el]);
  return (
    <div class="version-list" data-testid="version-list">
      {list.versions.map((o) => (
        <a
          key={o.version}
          ref={o.version === current ? setEl : undefined}
          class={`pop-item version-item ${o.version === current ? "active" : ""} ${o.deleted_ms !== null ? "deleted" : ""}`}
          href={`${artifactPath(project, o.name, o.version)}${withParams({ tab: new URLSearchParams(location.search).get("tab") }, "")}`}
          onClick={onPick}
          data-version={o.version}
          aria-current={o.version === current ? "page" : undefined}
        >
          <span class="version-item-main">
            <span class="mono version-num">v{o.version}</span>
            {o.aliases.map((a) => (
              <span class="alias" key={a}>
                @{a}
              </span>
            ))}
            {o.deleted_ms !== null && <span class="badge danger">deleted</span>}
          </span>
          <span class="muted small num" title={fmtDate(o.created_ms)}>
            {bytes(o.size)} · {fmtRelative(o.created_ms)}
          </span>
        </a>
      ))}
      {list.total > list.versions.length && <div class="pop-item muted small">…and {list.total - list.versions.length} older versions</div>}
    </div>
  );
}
