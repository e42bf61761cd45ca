import { useMemo, useRef, useState } from "preact/hooks";
import type { Group, Keys, Run } from "../api";
import { api, num, runsByIds } from "../api";
import type { Column } from "../columns";
import { ATTR_IDS, column, defaultColumns, parseSort } from "../columns";
import { fmtNum, fmtValue, plural, runStyles } from "../format";
import { listParam, projectPath, setParams, withParams } from "../router";
import { ChartControls, ChartGrid, Legend, chartSettings, prefetchPanels } from "./Charts";
import type { ChartRun } from "./Charts";
import { Empty, ErrorBox, isQueryError, Loading, toast, useAsync, useDismiss } from "./common";
import { FilterBox } from "./FilterBox";
import type { TableApi } from "./RunsTable";
import { ROW_H, RunsTable } from "./RunsTable";

export function useKeys(project: string) {
  return useAsync(() => api.keys(project), [project]);
}

export function setSelection(ids: string[]) {
  setParams({ runs: ids.length ? ids.join(",") : null });
}

export function RunsPage({ project, params }: { project: string; params: URLSearchParams }) {
  const keys = useKeys(project);
  const filter = params.get("filter") ?? "";
  const sort = params.get("sort") ?? "";
  const groupBy = params.get("group") ?? "";
  const selectedIds = listParam(params, "runs");
  const selected = useMemo(() => new Set(selectedIds), [selectedIds.join(",")]);
  // Parents whose children are folded away; a tree opens unfolded.
  const collapsedIds = listParam(params, "collapse");
  const collapsed = useMemo(() => new Set(collapsedIds), [collapsedIds.join(",")]);
  const onToggle = (id: string) => {
    const next = collapsed.has(id) ? collapsedIds.filter((x) => x !== id) : [...collapsedIds, id];
    setParams({ collapse: next.length ? next.join(",") : null });
  };
  const colIds = params.getAll("col");
  // The default columns come from the runs shown (the first page of the
  // filter: like `labbook ls`, the config keys that differ among them), so
  // they follow the filter; columns the user chose (`col` in the URL) stay.
  const chosen = colIds.length > 0;
  // Bumped by bulk tagging and deleting: the rows, and the columns they
  // call for (a first tag brings the Tags column), are fetched again.
  const [version, setVersion] = useState(0);
  const sample = useAsync(
    (signal) =>
      chosen ? Promise.resolve(null) : api.runs(project, { filter: filter || undefined, limit: 200 }, signal).then((page) => ({ project, filter, version, page })),
    [project, chosen, chosen ? "" : filter, version],
  );
  // A filter the server refuses keeps the columns of the last one it took.
  const shown = useRef<{ project: string; runs: Run[] } | null>(null);
  if (sample.data && !sample.loading) shown.current = { project, runs: sample.data.page.runs };
  const shownRuns = shown.current?.project === project ? shown.current.runs : undefined;
  const columns = useMemo(
    () => (chosen ? colIds : defaultColumns(shownRuns ?? [], sort)).map((id) => column(id, keys.data)),
    [colIds.join("\u0000"), keys.data, shownRuns, chosen ? "" : sort],
  );
  const [filterInvalid, setFilterInvalid] = useState(false);
  const table = useRef<TableApi | null>(null);
  const showCharts = params.get("charts") !== "0";
  const maxHeight = showCharts ? Math.max(300, Math.min(640, Math.round(window.innerHeight * 0.56))) : Math.max(300, window.innerHeight - 150);

  const onSort = (c: Column) => {
    const s = parseSort(sort);
    let next: string | null;
    if (!s || s.field !== c.sort) next = c.numeric ? `-${c.sort}` : (c.sort ?? null);
    else if (s.desc === c.numeric) next = `${s.desc ? "" : "-"}${c.sort}`;
    else next = null;
    setParams({ sort: next });
  };

  const onSelect = (ids: string[], on: boolean, opts?: { replace?: boolean }) => {
    if (opts?.replace) return setSelection(on ? ids : []);
    const next = new Set(selected);
    for (const id of ids) {
      if (on) next.add(id);
      else next.delete(id);
    }
    setSelection([...next]);
  };

  const bump = () => setVersion((v) => v + 1);

  return (
    <div class="page runs-page">
      <div class="toolbar">
        <FilterBox value={filter} keys={keys.data} onCommit={(f) => setParams({ filter: f || null })} onValidity={(ok) => setFilterInvalid(!ok)} />
        <GroupBySelect keys={keys.data} value={groupBy} />
        <ColumnChooser keys={keys.data} current={columns.map((c) => c.id)} />
      </div>
      {selected.size > 0 && <SelectionBar project={project} selected={[...selected]} onChanged={bump} />}
      {keys.error && <ErrorBox error={keys.error} retry={keys.reload} />}
      {!(chosen || ((keys.data || keys.error) && (shownRuns !== undefined || sample.error))) ? (
        <div class="table-wrap" style={{ height: `${maxHeight}px` }}>
          <Loading />
        </div>
      ) : groupBy ? (
        <GroupsTable project={project} by={groupBy} filter={filter} columns={columns} selected={selected} onSelect={onSelect} version={version} />
      ) : (
        <RunsTable
          project={project}
          filter={filter}
          sort={sort}
          columns={columns}
          selected={selected}
          onSelect={onSelect}
          onSort={onSort}
          version={version}
          tableRef={(t) => (table.current = t)}
          maxHeight={maxHeight}
          filterInvalid={filterInvalid}
          collapsed={collapsed}
          onToggle={onToggle}
          firstPage={sample.data ?? undefined}
        />
      )}
      <div class="runs-charts">
        <div class="subhead">
          <button class="section-head" onClick={() => setParams({ charts: showCharts ? "0" : null })} aria-expanded={showCharts}>
            <span class={`caret ${showCharts ? "open" : ""}`}>▸</span>
            Charts
            {selected.size > 0 && <span class="muted"> {plural(selected.size, "selected run")}</span>}
          </button>
          <a class="btn btn-sm" href={projectPath(project, "charts") + withParams({ runs: selectedIds.join(",") || null, filter: filter || null }, "")}>
            Open full charts
          </a>
        </div>
        {showCharts && <RunCharts project={project} params={params} selectedIds={selectedIds} filter={filter} />}
      </div>
    </div>
  );
}

/** How many runs the charts draw when none are selected. */
export const RECENT = 10;

/** Charts of the selected runs, or of the 10 most recent matching runs. */
export function RunCharts({ project, params, selectedIds, filter, compact = true }: { project: string; params: URLSearchParams; selectedIds: string[]; filter: string; compact?: boolean }) {
  const key = selectedIds.join(",");
  const runs = useAsync(
    async () => {
      let found: { runs: Run[]; total: number };
      if (selectedIds.length) {
        const picked = selectedIds.slice(0, 200);
        found = { runs: await runsByIds(project, picked), total: picked.length };
      } else {
        const page = await api.runs(project, { filter: filter || undefined, limit: RECENT });
        found = { runs: page.runs, total: page.total };
      }
      prefetchPanels(found.runs, chartSettings(params));
      return found;
    },
    [project, key, key ? "" : filter],
  );
  const settings = chartSettings(params);
  const list: Run[] = runs.data?.runs ?? [];
  const chartRuns: ChartRun[] = useMemo(() => {
    const styles = runStyles(list.map((r) => r.id));
    return list.map((r) => {
      const st = styles.get(r.id);
      return { id: r.id, name: r.name, created_ms: r.created_ms, color: st?.color ?? "#888", dash: st?.dash ?? null, metrics: r.metrics };
    });
  }, [list]);
  const metricKeys = useMemo(() => {
    const s = new Set<string>();
    for (const r of list) for (const k of Object.keys(r.metrics)) s.add(k);
    return [...s].sort();
  }, [list]);
  // A filter the server refused: the filter box says why, once.
  if (runs.error && isQueryError(runs.error) && filter && compact) return <p class="muted charts-scope">Charts show once the filter is fixed.</p>;
  if (runs.error) return <ErrorBox error={runs.error} retry={runs.reload} />;
  if (!runs.data) return <Loading />;
  const total = runs.data.total;
  const table = projectPath(project) + withParams({ runs: selectedIds.join(",") || null, filter: filter || null }, "");
  return (
    <div class="charts-block">
      {!selectedIds.length && total > 0 && (
        <p class="charts-scope" data-testid="charts-scope">
          {total > list.length ? (
            <>
              <strong>
                {list.length} most recent of {plural(total, "run")}
              </strong>{" "}
              drawn{filter ? " (matching the filter)" : ""}.{" "}
            </>
          ) : (
            <>
              <strong>{total === 1 ? "The only run" : `All ${plural(total, "run")}`}</strong> drawn{filter ? " (matching the filter)" : ""}.{" "}
            </>
          )}
          {compact ? "Tick runs in the table above to choose which." : <a href={table}>Choose runs in the table</a>}
        </p>
      )}
      <ChartControls settings={settings} hasZoom={!!settings.zoom || [...params.keys()].some((k) => k.startsWith("zoom."))} />
      {chartRuns.length > 0 && <Legend runs={chartRuns} hidden={settings.hidden} />}
      <ChartGrid project={project} runs={chartRuns} keys={metricKeys} settings={settings} compact={compact} />
    </div>
  );
}

function SelectionBar({ project, selected, onChanged }: { project: string; selected: string[]; onChanged: () => void }) {
  const [tagOpen, setTagOpen] = useState(false);
  const [tagText, setTagText] = useState("");
  const [busy, setBusy] = useState(false);
  const ref = useDismiss(tagOpen, () => setTagOpen(false));
  const carry = withParams({ runs: selected.join(",") }, "");

  const applyTags = async (remove: boolean) => {
    const tags = tagText.split(/[\s,]+/).filter(Boolean);
    if (!tags.length) return;
    setBusy(true);
    try {
      await api.tags(selected, remove ? [] : tags, remove ? tags : []);
      toast(`${remove ? "Removed" : "Added"} ${tags.map((t) => `“${t}”`).join(", ")} ${remove ? "from" : "to"} ${plural(selected.length, "run")}`);
      setTagOpen(false);
      setTagText("");
      onChanged();
    } catch (e) {
      toast(`Tagging failed: ${(e as Error).message}`);
    } finally {
      setBusy(false);
    }
  };

  const del = async () => {
    const ids = [...selected];
    setBusy(true);
    try {
      await api.del(ids);
      setSelection([]);
      onChanged();
      toast(`Deleted ${plural(ids.length, "run")}`, {
        label: "Undo",
        run: async () => {
          await api.restore(ids);
          setSelection(ids);
          onChanged();
          toast(`Restored ${plural(ids.length, "run")}`);
        },
      });
    } catch (e) {
      toast(`Delete failed: ${(e as Error).message}`);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="selection-bar" data-testid="selection-bar">
      <span class="sel-count num">{selected.length} selected</span>
      <a class="btn btn-sm" href={projectPath(project, "charts") + carry}>
        Charts
      </a>
      <a class="btn btn-sm" href={projectPath(project, "compare") + carry}>
        Compare
      </a>
      <a class="btn btn-sm" href={projectPath(project, "parallel") + carry}>
        Parallel
      </a>
      <a class="btn btn-sm" href={projectPath(project, "scatter") + carry}>
        Scatter
      </a>
      <span class="sep" />
      <div class="rel" ref={ref}>
        <button class="btn btn-sm" onClick={() => setTagOpen(!tagOpen)} disabled={busy} data-testid="bulk-tag">
          Tag…
        </button>
        {tagOpen && (
          <div class="popover tag-pop">
            <input
              class="input"
              autoFocus
              placeholder="tag names, space-separated"
              value={tagText}
              onInput={(e) => setTagText((e.target as HTMLInputElement).value)}
              onKeyDown={(e) => e.key === "Enter" && applyTags(false)}
              data-testid="bulk-tag-input"
            />
            <div class="row-gap">
              <button class="btn btn-sm btn-primary" onClick={() => applyTags(false)} disabled={busy}>
                Add
              </button>
              <button class="btn btn-sm" onClick={() => applyTags(true)} disabled={busy}>
                Remove
              </button>
            </div>
          </div>
        )}
      </div>
      <button class="btn btn-sm btn-danger" onClick={del} disabled={busy} data-testid="bulk-delete">
        Delete
      </button>
      <button class="btn btn-sm btn-ghost" onClick={() => setSelection([])}>
        Clear
      </button>
    </div>
  );
}

function GroupBySelect({ keys, value }: { keys: Keys | undefined; value: string }) {
  const options = ["group", "tags", "status", ...(keys?.config.map((c) => `config.${c.key}`) ?? [])];
  return (
    <label class="ctl">
      <span>Group by</span>
      <select value={value} onChange={(e) => setParams({ group: (e.target as HTMLSelectElement).value || null })} data-testid="group-by">
        <option value="">None</option>
        {options.map((o) => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </select>
    </label>
  );
}

function ColumnChooser({ keys, current }: { keys: Keys | undefined; current: string[] }) {
  const [open, setOpen] = useState(false);
  const [q, setQ] = useState("");
  const ref = useDismiss(open, () => setOpen(false));
  const cur = new Set(current);
  const toggle = (id: string) => {
    const next = cur.has(id) ? current.filter((c) => c !== id) : [...current, id];
    setParams({ col: next });
  };
  const match = (s: string) => !q || s.toLowerCase().includes(q.toLowerCase());
  const item = (id: string, label: string, extra?: string) =>
    match(id) && (
      <label class="pop-item check" key={id}>
        <input type="checkbox" checked={cur.has(id)} onChange={() => toggle(id)} />
        <span class="mono">{label}</span>
        {extra && <span class="muted">{extra}</span>}
      </label>
    );
  return (
    <div class="rel" ref={ref}>
      <button class="btn" onClick={() => setOpen(!open)} data-testid="column-chooser">
        Columns <span class="muted num">{current.length}</span>
      </button>
      {open && (
        <div class="popover col-pop">
          <input class="input" placeholder="Search keys" value={q} onInput={(e) => setQ((e.target as HTMLInputElement).value)} autoFocus />
          <div class="col-list">
            <div class="pop-group">Attributes</div>
            {ATTR_IDS.map((a) => item(a, a))}
            {keys && keys.config.length > 0 && <div class="pop-group">Config</div>}
            {keys?.config.map((c) => item(`config.${c.key}`, c.key, `${c.count}`))}
            {keys && keys.metrics.length > 0 && <div class="pop-group">Metrics</div>}
            {keys?.metrics.map(
              (m) =>
                match(m.key) && (
                  <div class="pop-item metric-item" key={m.key}>
                    <span class="mono grow">{m.key}</span>
                    {(["last", "min", "max"] as const).map((agg) => {
                      const id = agg === "last" ? `metrics.${m.key}` : `${agg}(metrics.${m.key})`;
                      return (
                        <label class="agg" key={agg}>
                          <input type="checkbox" checked={cur.has(id)} onChange={() => toggle(id)} />
                          {agg}
                        </label>
                      );
                    })}
                  </div>
                ),
            )}
            {keys && keys.summary.length > 0 && <div class="pop-group">Summary</div>}
            {keys?.summary.map((s) => item(`summary.${s.key}`, s.key))}
          </div>
          <div class="pop-foot row-gap">
            <button class="btn btn-sm btn-ghost" onClick={() => setParams({ col: null })}>
              Reset to defaults
            </button>
          </div>
        </div>
      )}
    </div>
  );
}

function GroupsTable({
  project,
  by,
  filter,
  columns,
  selected,
  onSelect,
  version,
}: {
  project: string;
  by: string;
  filter: string;
  columns: Column[];
  selected: Set<string>;
  onSelect: (ids: string[], on: boolean) => void;
  version: number;
}) {
  const groups = useAsync((signal) => api.groups(project, by, filter || undefined, signal), [project, by, filter, version]);
  const [open, setOpen] = useState<Set<string>>(new Set());
  const metricCols = columns.filter((c) => c.id.startsWith("metrics."));
  const statKeys = metricCols.length ? metricCols.map((c) => c.id.slice(8)) : [];
  if (groups.error && isQueryError(groups.error) && filter) return <div class="table-note">No groups shown: the filter has an error (see under the filter box).</div>;
  if (groups.error) return <ErrorBox error={groups.error} retry={groups.reload} />;
  if (!groups.data) return <Loading />;
  const list = groups.data.groups;
  const keysShown = statKeys.length
    ? statKeys
    : [...new Set(list.flatMap((g) => Object.keys(g.metrics)))].filter((k) => !k.startsWith("sys/")).slice(0, 6);
  if (list.length === 0) return <Empty title="No runs to group">No run matches the filter.</Empty>;
  return (
    <div class="table-wrap groups" data-testid="groups-table">
      <table class="table">
        <thead>
          <tr>
            <th class="check" />
            <th>{by}</th>
            <th class="num">Runs</th>
            {keysShown.map((k) => (
              <th class="num" key={k}>
                {k} <span class="muted">mean ± std</span>
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {list.map((g) => {
            const id = JSON.stringify(g.value);
            const isOpen = open.has(id);
            const allSel = g.run_ids.every((r) => selected.has(r));
            return [
              <tr key={id} class="group-row" data-group={fmtValue(g.value)}>
                <td class="check">
                  <input type="checkbox" checked={allSel} onChange={() => onSelect(g.run_ids, !allSel)} aria-label="Select the group's runs" />
                </td>
                <td>
                  <button
                    class="link-btn"
                    onClick={() => {
                      const n = new Set(open);
                      if (isOpen) n.delete(id);
                      else n.add(id);
                      setOpen(n);
                    }}
                  >
                    <span class={`caret ${isOpen ? "open" : ""}`}>▸</span> {g.value === null ? <span class="muted">(none)</span> : fmtValue(g.value)}
                  </button>
                </td>
                <td class="num">{g.count}</td>
                {keysShown.map((k) => (
                  <td class="num" key={k}>
                    <GroupStatCell g={g} k={k} />
                  </td>
                ))}
              </tr>,
              isOpen && (
                <tr key={`${id}-runs`} class="group-runs">
                  <td colSpan={3 + keysShown.length}>
                    <GroupRuns project={project} ids={g.run_ids} columns={columns} selected={selected} onSelect={onSelect} />
                  </td>
                </tr>
              ),
            ];
          })}
        </tbody>
      </table>
    </div>
  );
}

function GroupStatCell({ g, k }: { g: Group; k: string }) {
  const s = g.metrics[k];
  if (!s) return <span class="muted">—</span>;
  return (
    <span>
      {fmtNum(num(s.mean))}
      {s.n > 1 && <span class="muted"> ± {fmtNum(num(s.std))}</span>}
    </span>
  );
}

function GroupRuns({ project, ids, columns, selected, onSelect }: { project: string; ids: string[]; columns: Column[]; selected: Set<string>; onSelect: (ids: string[], on: boolean) => void }) {
  const runs = useAsync(() => runsByIds(project, ids.slice(0, 200)), [project, ids.join(",")]);
  if (runs.error) return <ErrorBox error={runs.error} />;
  if (!runs.data) return <Loading />;
  const template = `36px ${columns.map((c) => `${c.width}px`).join(" ")}`;
  const now = Date.now();
  return (
    <div class="group-inner">
      {runs.data.map((r) => (
        <div class={`tr static ${selected.has(r.id) ? "selected" : ""}`} style={{ gridTemplateColumns: template, height: `${ROW_H}px` }} key={r.id} data-run={r.id}>
          <div class="td check">
            <input type="checkbox" checked={selected.has(r.id)} onChange={() => onSelect([r.id], !selected.has(r.id))} />
          </div>
          {columns.map((c) => (
            <div class={`td ${c.numeric ? "num" : ""}`} key={c.id}>
              {c.cell(r, now)}
            </div>
          ))}
        </div>
      ))}
      {ids.length > 200 && <div class="muted pad">Showing 200 of {plural(ids.length, "run")}.</div>}
    </div>
  );
}
