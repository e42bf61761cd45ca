import type { ConfigValue, Num } from "./api";
import { num } from "./api";

/** A number for a table cell: NaN and ±∞ as symbols, up to 4 significant digits
 * for small floats, thousands separators for big integers. */
export function fmtNum(v: Num | number | null | undefined): string {
  if (v === null || v === undefined) return "";
  const x = num(v);
  if (Number.isNaN(x)) return "NaN";
  if (x === Infinity) return "∞";
  if (x === -Infinity) return "−∞";
  if (Number.isInteger(x) && Math.abs(x) < 1e15) return x.toLocaleString("en-US");
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return x.toExponential(3).replace("e+", "e").replace(/\.?0+e/, "e");
  return String(Number(x.toPrecision(4)));
}

/** A config value as written: strings plain, lists/objects as compact JSON. */
export function fmtValue(v: ConfigValue | undefined): string {
  if (v === undefined) return "";
  if (v === null) return "null";
  if (typeof v === "number") return fmtNum(v);
  if (v === "NaN" || v === "Infinity" || v === "-Infinity") return fmtNum(v);
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return String(v);
  return JSON.stringify(v);
}

export function fmtDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "";
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.floor(s % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function fmtRelative(ms: number | null | undefined, now = Date.now()): string {
  if (!ms) return "";
  const d = (now - ms) / 1000;
  if (d < 0) return "just now";
  if (d < 45) return "just now";
  if (d < 90) return "1 min ago";
  if (d < 3600) return `${Math.round(d / 60)} min ago`;
  if (d < 86400) return `${Math.round(d / 3600)} h ago`;
  if (d < 86400 * 30) return `${Math.round(d / 86400)} d ago`;
  return new Date(ms).toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
}

export function fmtDate(ms: number | null | undefined): string {
  if (!ms) return "";
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtBytes(n: number | null | undefined): string {
  if (!n) return "";
  const u = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let x = n;
  while (x >= 1024 && i < u.length - 1) {
    x /= 1024;
    i++;
  }
  return `${x.toFixed(x < 10 && i > 0 ? 1 : 0)} ${u[i]}`;
}

export function fmtPct(x: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? "NaN" : x > 0 ? "+∞%" : "−∞%";
  const s = Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2);
  return `${x > 0 ? "+" : ""}${s}%`;
}

// Run colors: one stable color per run id across every panel and page.
const PALETTE = [
  "#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7",
  "#9c755f", "#2f9fd8", "#d45087", "#7fb800", "#8c61d4", "#e6820e", "#00a19b", "#c44e52",
  "#5a8ff0", "#bab0ac", "#dd7e6b", "#3bb273",
];

function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function runColor(id: string): string {
  return PALETTE[hash(id) % PALETTE.length];
}

export function withAlpha(hex: string, a: number): string {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
}

/** Quotes a key for the query language when it has characters a bare
 * identifier cannot hold. */
export function quoteKey(key: string): string {
  return /^[\p{L}\p{N}_.\/\-@:\[\]]+$/u.test(key) ? key : "`" + key.replace(/`/g, "``") + "`";
}
