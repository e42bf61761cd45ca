// An MLflow model's input example (input_example.json) as a table, when it
// is one.

function str(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/** An input example as a table when it is one: a list of rows, pandas'
 * split orient ({columns, data}), a list of records, or MLflow's serving
 * wrappers around those. */
export function exampleTable(v: unknown, names: string[] = []): { columns: string[]; rows: string[][] } | null {
  if (v && typeof v === "object" && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    for (const k of ["dataframe_split", "dataframe_records", "inputs", "instances"]) if (k in o) return exampleTable(o[k], names);
    if (Array.isArray(o.columns) && Array.isArray(o.data)) return exampleTable(o.data, o.columns.map(str));
    return null;
  }
  if (!Array.isArray(v) || v.length === 0) return null;
  if (v.every((r) => Array.isArray(r))) {
    const width = Math.max(...v.map((r: unknown[]) => r.length));
    const columns = Array.from({ length: width }, (_, i) => names[i] ?? String(i));
    return { columns, rows: v.map((r: unknown[]) => columns.map((_, i) => str(r[i]))) };
  }
  if (v.every((r) => r && typeof r === "object")) {
    const columns = [...new Set(v.flatMap((r) => Object.keys(r as object)))];
    return { columns, rows: v.map((r) => columns.map((c) => str((r as Record<string, unknown>)[c]))) };
  }
  return { columns: names.length === 1 ? names : ["value"], rows: v.map((x) => [str(x)]) };
}
