// Runs table columns: attributes, config keys, metric summaries (last, min,
// max) and user summaries. A column id is also its sort field.
import type { JSX } from "preact";
import type { Keys, Run } from "./api";
import { isNum, num } from "./api";
import { fmtDate, fmtDuration, fmtNum, fmtRelative, fmtValue, plainText, quoteKey } from "./format";
import { runPath } from "./router";
import { StatusPill, Tags } from "./components/common";

export type Column = {
  id: string;
  label: string;
  title: string;
  width: number;
  sort: string | null; // the sort field, null when not sortable
  numeric: boolean;
  cell: (r: Run, now: number) => JSX.Element | string;
  value?: (r: Run) => number | undefined; // for group means
};

const ATTR: Record<string, Omit<Column, "id">> = {
  name: {
    label: "Name",
    title: "name",
    width: 190,
    sort: "name",
    numeric: false,
    cell: (r) => (
      <a class="run-link" href={runPath(r.project, r.id)} title={`${r.name} (${r.id})`}>
        {r.name}
      </a>
    ),
  },
  id: { label: "ID", title: "id", width: 96, sort: "id", numeric: false, cell: (r) => <span class="mono muted">{r.id}</span> },
  status: { label: "Status", title: "status", width: 112, sort: "status", numeric: false, cell: (r) => <StatusPill status={r.status} /> },
  tags: { label: "Tags", title: "tags", width: 140, sort: "tags", numeric: false, cell: (r) => <Tags tags={r.tags} /> },
  group: { label: "Group", title: "group", width: 150, sort: "group", numeric: false, cell: (r) => <span class="ellipsis">{r.group ?? ""}</span> },
  created: {
    label: "Created",
    title: "created",
    width: 104,
    sort: "created",
    numeric: false,
    cell: (r, now) => <span title={fmtDate(r.created_ms)}>{fmtRelative(r.created_ms, now)}</span>,
  },
  ended: { label: "Ended", title: "ended", width: 104, sort: "ended", numeric: false, cell: (r, now) => <span title={fmtDate(r.ended_ms)}>{fmtRelative(r.ended_ms, now)}</span> },
  duration: {
    label: "Duration",
    title: "duration",
    width: 92,
    sort: "duration",
    numeric: true,
    cell: (r, now) => fmtDuration(r.status === "running" ? now - r.created_ms : r.duration_ms),
    value: (r) => r.duration_ms,
  },
  notes: { label: "Why", title: "notes: what the run tests and why", width: 300, sort: "notes", numeric: false, cell: (r) => <span class="ellipsis notes-cell" title={r.notes ?? ""}>{plainText(r.notes)}</span> },
  host: { label: "Host", title: "host", width: 110, sort: "host", numeric: false, cell: (r) => r.host ?? "" },
  exit_code: { label: "Exit", title: "exit_code", width: 60, sort: "exit_code", numeric: true, cell: (r) => (r.exit_code === null ? "" : String(r.exit_code)) },
};

export const ATTR_IDS = Object.keys(ATTR);

function numCell(v: number | undefined | null): JSX.Element | string {
  if (v === undefined || v === null) return "";
  return <span class={Number.isFinite(v) ? "" : "nonfinite"}>{fmtNum(v)}</span>;
}

export function column(id: string, keys?: Keys): Column {
  const attr = ATTR[id];
  if (attr) return { id, ...attr };
  const m = /^(min|max)\(metrics\.(.+)\)$/.exec(id);
  if (m) {
    const [, agg, key] = m;
    const get = (r: Run) => {
      const s = r.metrics[key];
      if (!s) return undefined;
      const v = agg === "min" ? s.min : s.max;
      return v === null ? undefined : num(v);
    };
    return {
      id,
      label: `${key} (${agg})`,
      title: `${agg}(metrics.${key})`,
      width: 120,
      sort: `${agg}(metrics.${quoteKey(key)})`,
      numeric: true,
      cell: (r) => numCell(get(r)),
      value: get,
    };
  }
  if (id.startsWith("metrics.")) {
    const key = id.slice(8);
    const get = (r: Run) => (r.metrics[key] ? num(r.metrics[key].last) : undefined);
    return { id, label: key, title: `metrics.${key} (last value)`, width: 110, sort: `metrics.${quoteKey(key)}`, numeric: true, cell: (r) => numCell(get(r)), value: get };
  }
  if (id.startsWith("config.")) {
    const key = id.slice(7);
    return {
      id,
      label: key,
      title: `config.${key}`,
      width: 100,
      sort: `config.${quoteKey(key)}`,
      numeric: keys?.config.find((c) => c.key === key)?.numeric ?? true,
      cell: (r) => {
        const v = r.config[key];
        if (v === undefined) return "";
        if (typeof v === "number") return numCell(v);
        return <span class="ellipsis" title={fmtValue(v)}>{fmtValue(v)}</span>;
      },
    };
  }
  if (id.startsWith("summary.")) {
    const key = id.slice(8);
    return {
      id,
      label: key,
      title: `summary.${key}`,
      width: 110,
      sort: `summary.${quoteKey(key)}`,
      numeric: true,
      cell: (r) => {
        const v = r.summary[key];
        if (v === undefined) return "";
        if (typeof v === "number" || v === "NaN" || v === "Infinity" || v === "-Infinity") return numCell(num(v));
        return <span class="ellipsis">{fmtValue(v)}</span>;
      },
    };
  }
  return { id, label: id, title: id, width: 100, sort: null, numeric: false, cell: () => "" };
}

/** Config columns at most, and metric and summary columns, by default. */
const MAX_CONFIG = 6;
const MAX_METRICS = 4;
const MAX_SUMMARY = 2;

/** Whether two config values are the same (NaN equals NaN here). */
function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/** Keys of `maps` ordered as `labbook ls` orders its columns: by `rank`,
 * then by how many runs have them, then by name. */
function byUse(maps: object[], keep: (k: string) => boolean, rank: (k: string) => number = () => 0): string[] {
  const counts = new Map<string, number>();
  for (const m of maps) for (const k of Object.keys(m)) counts.set(k, (counts.get(k) ?? 0) + 1);
  return [...counts]
    .filter(([k]) => keep(k))
    .sort((a, b) => rank(a[0]) - rank(b[0]) || b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([k]) => k);
}

/** Validation metrics first: what a run is judged by (`val/acc`, and
 * scikit-learn's `mean_test_score`); wall-clock measurements (`mean_fit_time`)
 * last. */
function metricRank(k: string): number {
  if (k.startsWith("sys/")) return 9;
  if (/(^|[/_.-])(val|valid|validation|eval|test)([/_.-]|$)/i.test(k)) return 0;
  if (/(^|[/_.-])(time|duration|runtime)([/_.-]|$)/i.test(k)) return 2;
  return 1;
}

/** The config keys whose values differ among `runs`, the most widely set
 * first. A key some runs lack differs, but only among siblings (runs with
 * the same parent): a GridSearch parent holds other keys than its children,
 * and the children's constant keys are no columns for being absent from
 * the parent. */
export function varyingConfigKeys(runs: Run[], max: number): string[] {
  const siblings = new Map<string, Run[]>();
  for (const r of runs) {
    const g = siblings.get(r.parent ?? "");
    if (g) g.push(r);
    else siblings.set(r.parent ?? "", [r]);
  }
  const groups = [...siblings.values()];
  const varies = (k: string) => {
    if (groups.some((g) => g.some((r) => !sameValue(r.config[k], g[0].config[k])))) return true;
    const set = runs.filter((r) => r.config[k] !== undefined);
    return set.some((r) => !sameValue(r.config[k], set[0].config[k]));
  };
  return byUse(
    runs.map((r) => r.config),
    varies,
  ).slice(0, max);
}

/** The metrics a run is judged by: validation metrics first, then the most
 * widely logged; system metrics never. */
export function headlineMetricKeys(runs: Run[], max: number): string[] {
  return byUse(
    runs.map((r) => r.metrics),
    (k) => !k.startsWith("sys/"),
    metricRank,
  ).slice(0, max);
}

/** The columns to show by default, for the runs `shown` (the first page of
 * the current filter): name and status; the headline metrics (validation
 * metrics first, the most widely logged) and summary values; the config keys
 * whose values differ among the shown runs (a key some runs lack differs; a
 * key with one value across them all is no column), the most widely set
 * first; the sorted field when it is none of these; then tags and group when
 * a shown run has any, the times and the notes. */
export function defaultColumns(shown: Run[], sort = ""): string[] {
  const config = varyingConfigKeys(shown, MAX_CONFIG);
  const metrics = headlineMetricKeys(shown, MAX_METRICS);
  const summary = byUse(
    shown.map((r) => r.summary),
    (k) => shown.some((r) => isNum(r.summary[k])),
  ).slice(0, MAX_SUMMARY);
  const cols = ["name", "status", ...metrics.map((k) => `metrics.${k}`), ...summary.map((k) => `summary.${k}`), ...config.map((k) => `config.${k}`)];
  const sorted = sortColumn(sort);
  if (sorted && !cols.includes(sorted) && !ATTR[sorted]) cols.splice(2, 0, sorted);
  if (shown.some((r) => r.tags.length > 0)) cols.push("tags");
  if (shown.some((r) => r.group)) cols.push("group");
  cols.push("created", "duration");
  if (shown.some((r) => r.notes)) cols.push("notes");
  return cols;
}

/** The column id of a sort spec's first field (`-metrics.loss` →
 * `metrics.loss`); a quoted key is unquoted. */
export function sortColumn(spec: string): string | null {
  const s = parseSort(spec);
  if (!s) return null;
  const unquote = (f: string) => f.replace(/`((?:[^`]|``)*)`/g, (_, k: string) => k.replace(/``/g, "`"));
  return unquote(s.field);
}

/** Splits a sort spec into its first field and direction. */
export function parseSort(spec: string): { field: string; desc: boolean } | null {
  const first = spec.split(",")[0]?.trim();
  if (!first) return null;
  return first.startsWith("-") ? { field: first.slice(1), desc: true } : { field: first, desc: false };
}
