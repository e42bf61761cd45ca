// Parquet decoded in the browser (hyparquet, its own chunk: loaded when a
// Parquet file is first previewed). The server checks only the magic bytes,
// so whatever follows may be anything: every failure is an Error for the
// page to show, never a hang or a crash.
import { parquetMetadata, parquetRead, parquetSchema } from "hyparquet";

export type ParquetTable = { columns: string[]; rows: string[][]; total: number; types: string[] };

/** One cell as text: int64 values arrive as BigInt, timestamps as Date,
 * binary as bytes, nested values as objects. */
export function cellText(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "number") return Number.isFinite(v) ? String(v) : String(v);
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return String(v);
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? "Invalid Date" : v.toISOString();
  if (v instanceof Uint8Array) return `<${v.length} bytes>`;
  try {
    return JSON.stringify(v, (_, x: unknown) => (typeof x === "bigint" ? x.toString() : x instanceof Uint8Array ? `<${x.length} bytes>` : x));
  } catch {
    return String(v);
  }
}

/** The first `limit` rows of the Parquet file in `buf`. */
export async function readParquet(buf: ArrayBuffer, limit: number): Promise<ParquetTable> {
  const metadata = parquetMetadata(buf);
  const schema = parquetSchema(metadata);
  const columns = schema.children.map((c) => c.element.name);
  const types = schema.children.map((c) => c.element.logical_type?.type ?? c.element.converted_type ?? c.element.type ?? (c.children.length ? "group" : ""));
  const total = Number(metadata.num_rows);
  if (!Number.isFinite(total) || total < 0) throw new Error(`the footer gives ${String(metadata.num_rows)} rows`);
  let rows: unknown[][] = [];
  await parquetRead({
    file: buf,
    metadata,
    rowEnd: Math.min(limit, total),
    rowFormat: "array",
    onComplete: (r: unknown[][]) => {
      rows = r;
    },
  });
  return { columns, rows: rows.slice(0, limit).map((r) => columns.map((_, i) => cellText(r[i]))), total, types: types.map(String) };
}
