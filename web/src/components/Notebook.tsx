// The lab notebook: runs and groups with their "why" and outcome, interleaved
// with notes written here (Markdown, saved to the server).
import { useState } from "preact/hooks";
import type { NotebookEntry } from "../api";
import { api } from "../api";
import { fmtDate, fmtDuration, fmtNum, fmtRelative, plainText } from "../format";
import { preferredMetric } from "../fields";
import { runPath, setParams } from "../router";
import { useKeys } from "./RunsPage";
import { Empty, ErrorBox, Loading, Markdown, StatusPill, toast, useAsync } from "./common";

type RunEntry = Extract<NotebookEntry, { kind: "run" }>;
type Item = { kind: "note"; e: Extract<NotebookEntry, { kind: "note" }> } | { kind: "runs"; group: string | null; runs: RunEntry[]; created_ms: number };

/** Consecutive runs of one group fold into one timeline item. */
function fold(entries: NotebookEntry[]): Item[] {
  const out: Item[] = [];
  for (const e of entries) {
    if (e.kind === "note") {
      out.push({ kind: "note", e });
      continue;
    }
    const last = out[out.length - 1];
    if (last && last.kind === "runs" && e.run.group !== null && last.group === e.run.group) last.runs.push(e);
    else out.push({ kind: "runs", group: e.run.group, runs: [e], created_ms: e.created_ms });
  }
  return out;
}

function dayOf(ms: number): string {
  return new Date(ms).toLocaleDateString(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
}

export function NotebookPage({ project, params }: { project: string; params: URLSearchParams }) {
  const keys = useKeys(project);
  const headline = params.get("headline") ?? preferredMetric(keys.data) ?? "";
  const nb = useAsync(() => (keys.data || keys.error ? api.notebook(project, headline || undefined) : new Promise<never>(() => undefined)), [project, headline, !!(keys.data || keys.error)]);
  const [text, setText] = useState("");
  const [preview, setPreview] = useState(false);
  const [busy, setBusy] = useState(false);

  const save = async () => {
    if (!text.trim()) return;
    setBusy(true);
    try {
      await api.addNote(project, text.trim(), null);
      setText("");
      setPreview(false);
      nb.reload();
    } catch (e) {
      toast(`Could not save the note: ${(e as Error).message}`);
    } finally {
      setBusy(false);
    }
  };

  const items = nb.data ? fold(nb.data.entries) : [];
  let lastDay = "";
  return (
    <div class="page narrow notebook-page">
      <div class="page-head">
        <h1>Lab notebook</h1>
        <span class="muted">what was tried, why, and what came of it</span>
        {keys.data && keys.data.metrics.length > 0 && (
          <label class="ctl push-right">
            <span>Headline</span>
            <select value={headline} onChange={(e) => setParams({ headline: (e.target as HTMLSelectElement).value })} data-testid="headline">
              {keys.data.metrics.map((m) => (
                <option key={m.key} value={m.key}>
                  {m.key}
                </option>
              ))}
            </select>
          </label>
        )}
      </div>
      <div class="card note-editor">
        <div class="seg">
          <button class={`seg-btn ${!preview ? "active" : ""}`} onClick={() => setPreview(false)}>
            Write
          </button>
          <button class={`seg-btn ${preview ? "active" : ""}`} onClick={() => setPreview(true)} disabled={!text.trim()}>
            Preview
          </button>
        </div>
        {preview ? (
          <Markdown text={text} class="preview" />
        ) : (
          <textarea
            class="input"
            rows={4}
            placeholder="What did you learn? What will you try next? (Markdown)"
            value={text}
            data-testid="note-input"
            onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
            onKeyDown={(e) => (e.metaKey || e.ctrlKey) && e.key === "Enter" && save()}
          />
        )}
        <div class="row-gap end">
          <span class="muted small">Ctrl+Enter to save</span>
          <button class="btn btn-primary btn-sm" disabled={busy || !text.trim()} onClick={save} data-testid="note-save">
            Add to notebook
          </button>
        </div>
      </div>
      {nb.error ? (
        <ErrorBox error={nb.error} retry={nb.reload} />
      ) : !nb.data ? (
        <Loading />
      ) : items.length === 0 ? (
        <Empty title="The notebook is empty">
          Runs appear here with their “why” as you log them (<code>labbook.init(notes="…")</code>); write notes above.
        </Empty>
      ) : (
        <ol class="timeline" data-testid="timeline">
          {items.map((it, i) => {
            const ms = it.kind === "note" ? it.e.created_ms : it.created_ms;
            const day = dayOf(ms);
            const showDay = day !== lastDay;
            lastDay = day;
            return [
              showDay && (
                <li class="tl-day" key={`d${i}`}>
                  {day}
                </li>
              ),
              it.kind === "note" ? (
                <li class="tl-item tl-note" key={`n${it.e.id}-${i}`} data-testid="note-entry">
                  <span class="tl-dot is-note" />
                  <div class="tl-body card">
                    <div class="tl-meta muted" title={fmtDate(it.e.created_ms)}>
                      Note · {fmtRelative(it.e.created_ms)}
                      {it.e.run_id && (
                        <>
                          {" "}
                          · on <a href={runPath(project, it.e.run_id)}>{it.e.run_id}</a>
                        </>
                      )}
                    </div>
                    <Markdown text={it.e.text} />
                  </div>
                </li>
              ) : (
                <li class="tl-item" key={`r${i}`}>
                  <span class="tl-dot" />
                  <div class="tl-body">
                    <div class="tl-meta muted" title={fmtDate(it.created_ms)}>
                      {it.group ? (
                        <>
                          Group <strong class="text">{it.group}</strong> · {it.runs.length} run{it.runs.length > 1 ? "s" : ""}
                        </>
                      ) : (
                        "Run"
                      )}{" "}
                      · {fmtRelative(it.created_ms)}
                    </div>
                    {it.runs.length > 1 && it.runs.every((r) => r.run.notes && r.run.notes === it.runs[0].run.notes) && it.runs[0].run.notes && <div class="tl-why">{plainText(it.runs[0].run.notes)}</div>}
                    <div class="tl-runs">
                      {it.runs.map((r) => (
                        <div class="tl-run" key={r.run.id}>
                          <StatusPill status={r.run.status} />
                          <a href={runPath(project, r.run.id)} class="tl-run-name">
                            {r.run.name}
                          </a>
                          {r.run.headline && (
                            <span class="headline num">
                              <span class="muted">{r.run.headline.key}</span> {fmtNum(r.run.headline.value)}
                            </span>
                          )}
                          <span class="muted num">{fmtDuration(r.run.duration_ms)}</span>
                          {!(it.runs.length > 1 && it.runs.every((x) => x.run.notes === it.runs[0].run.notes)) && r.run.notes && <span class="tl-run-why" title={r.run.notes}>{plainText(r.run.notes)}</span>}
                        </div>
                      ))}
                    </div>
                  </div>
                </li>
              ),
            ];
          })}
        </ol>
      )}
    </div>
  );
}
