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
// 18 hues evenly spaced in OKLCH (alternating lightness), ordered so that
// neighbouring slots are far apart: a collision moves a run to the next slot.
const PALETTE = [
  "#d8625c", "#0bc18d", "#a272d4", "#cf9b00", "#009dd0", "#f07998", "#47a34e", "#9c95fe", "#c97500",
  "#00bed1", "#ca62a1", "#8fb43f", "#5f87e7", "#f0834e", "#00a898", "#d381d8", "#9b9000", "#43acfb",
];

function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A run's own color (its hash slot in the palette). */
export function runColor(id: string): string {
  return PALETTE[hash(id) % PALETTE.length];
}

/** Colors for a set of runs shown together: each run keeps its hash slot
 * unless a run of the set already holds it or a neighbouring hue, then it
 * takes the next slot that is far enough from every color taken. The result
 * depends only on the set, so every panel, legend and table of a view agrees. */
export function runColors(ids: string[]): Map<string, string> {
  const n = PALETTE.length;
  const hueOf = (slot: number) => (slot * 7) % n; // PALETTE is hues stepped by 7
  const out = new Map<string, string>();
  const used: number[] = [];
  const uniq = [...new Set(ids)].sort((a, b) => hash(a) - hash(b) || (a < b ? -1 : 1));
  for (const id of uniq) {
    const pref = hash(id) % n;
    let chosen = pref;
    if (used.length < n) {
      const gap = (slot: number) => Math.min(n, ...used.map((u) => Math.min(Math.abs(hueOf(u) - hueOf(slot)), n - Math.abs(hueOf(u) - hueOf(slot)))));
      search: for (let want = Math.max(1, Math.floor(n / Math.max(1, uniq.length))); want >= 1; want--) {
        for (let k = 0; k < n; k++) {
          const slot = (pref + k) % n;
          if (!used.includes(slot) && gap(slot) >= want) {
            chosen = slot;
            break search;
          }
        }
      }
    }
    used.push(chosen);
    out.set(id, PALETTE[chosen]);
  }
  return out;
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

/** One line of Markdown as plain text (emphasis, code and link markup removed). */
export function plainText(md: string | null | undefined): string {
  if (!md) return "";
  return md
    .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/(\*\*|`)(\S(?:.*?\S)?)\1/g, "$2")
    .replace(/^#+\s+/gm, "")
    .replace(/\s*\n\s*/g, " ")
    .trim();
}

/** Axis tick labels with just enough decimals to tell neighbours apart. */
export function fmtTicks(vals: (number | null)[]): string[] {
  const nums = vals.filter((v): v is number => v !== null && Number.isFinite(v));
  let step = Infinity;
  for (let i = 1; i < nums.length; i++) step = Math.min(step, Math.abs(nums[i] - nums[i - 1]));
  const big = Math.max(0, ...nums.map(Math.abs));
  if (!Number.isFinite(step) || step === 0 || big >= 1e6 || (big > 0 && big < 1e-3)) return vals.map((v) => (v === null ? "" : fmtNum(v)));
  const decimals = Math.max(0, Math.min(10, -Math.floor(Math.log10(step) + 1e-9)));
  return vals.map((v) => {
    if (v === null) return "";
    if (Number.isInteger(v) && Math.abs(v) >= 1000) return v.toLocaleString("en-US");
    return Number(v.toFixed(decimals)).toLocaleString("en-US", { maximumFractionDigits: decimals });
  });
}
