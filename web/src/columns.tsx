// Runs table columns: attributes, config keys, metric summaries (last, min,
// max) and user summaries. A column id is also its sort field.
import type { JSX } from "preact";
import type { Keys, Run } from "./api";
import { num } from "./api";
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
  status: { label: "Status", title: "status", width: 104, sort: "status", numeric: false, cell: (r) => <StatusPill status={r.status} /> },
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

export const DEFAULT_ATTRS = ["name", "status", "tags", "group", "created", "duration", "notes"];
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

/** The columns to show by default: the attributes, the config keys whose
 * values differ across `sample` (like `labbook ls`; up to 6) and the last
 * value of up to 4 non-system metrics. */
export function defaultColumns(keys: Keys | undefined, sample: Run[] = []): string[] {
  const cols = [...DEFAULT_ATTRS];
  if (!keys) return cols;
  const varies = (k: string) => new Set(sample.map((r) => JSON.stringify(r.config[k] ?? null))).size > 1;
  let config = keys.config.map((c) => c.key);
  if (sample.length > 1) config = config.filter(varies);
  const metrics = keys.metrics.filter((m) => !m.key.startsWith("sys/")).slice(0, 4).map((m) => `metrics.${m.key}`);
  const notesAt = cols.indexOf("notes");
  return [...cols.slice(0, notesAt), ...config.slice(0, 6).map((k) => `config.${k}`), ...metrics, ...cols.slice(notesAt)];
}

/** Splits a sort spec into its first field and direction. */
export function parseSort(spec: string): { field: string; desc: boolean } | null {
  const first = spec.split(",")[0]?.trim();
  if (!first) return null;
  return first.startsWith("-") ? { field: first.slice(1), desc: true } : { field: first, desc: false };
}
