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
  if (Number.isInteger(x) && Math.abs(x) < 1e15) return numberFormat(0, 0).format(x);
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
  // The same minus sign as the deltas beside it.
  return `${x > 0 ? "+" : ""}${s.replace("-", "−")}%`;
}

// Run colors: a run's color is a function of its id alone, so a run has
// the same color on its own page, in every chart, legend, compare column and
// scatter point, whichever runs are shown beside it. 18 hues evenly spaced
// in OKLCH (alternating lightness), ordered so that neighbouring slots are
// far apart. Two runs shown together can hash to the same color: moving one
// of them would give it another color on the pages where the other is absent,
// so the color stays and the line style tells them apart (runStyles).
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

/** A run's color: its id's hash slot in the palette, on every page. */
export function runColor(id: string): string {
  return PALETTE[hash(id) % PALETTE.length];
}

/** Dash patterns (canvas lengths in CSS pixels) for the second, third, …
 * run of one color in a view; the first run of a color is solid. Ten runs
 * of one color stay apart: rare with 18 colors (a view of ten random ids
 * puts six on one color about once in 8,000 views), but it happens. */
export const DASHES: number[][] = [
  [7, 3], [2, 2.5], [10, 3, 2, 3], [4, 2], [12, 4], [1, 3], [8, 2, 1, 2, 1, 2], [5, 5], [14, 2, 2, 2],
];

export type RunStyle = { color: string; dash: number[] | null };

/** More runs than this in one view and no line style could tell them all
 * apart: the view is crowded, its lines solid and thin (linesOf). */
export const CROWDED = 2 * PALETTE.length;

/** Each run's color and line style in a view of `ids`: the run's own color,
 * and where runs of the view share it, a dash pattern for all but one of
 * them. Which one stays solid depends only on the ids (by hash), so every
 * panel and legend of the view agrees. */
export function runStyles(ids: string[]): Map<string, RunStyle> {
  const out = new Map<string, RunStyle>();
  const byColor = new Map<string, string[]>();
  for (const id of new Set(ids)) {
    const c = runColor(id);
    byColor.set(c, [...(byColor.get(c) ?? []), id]);
  }
  for (const [color, group] of byColor) {
    group.sort((a, b) => hash(`${a}\u0000dash`) - hash(`${b}\u0000dash`) || (a < b ? -1 : 1));
    const crowded = ids.length > CROWDED;
    group.forEach((id, i) => out.set(id, { color, dash: i === 0 || crowded ? null : DASHES[(i - 1) % DASHES.length] }));
  }
  return out;
}

/** Line widths (CSS pixels) for a panel of `runs` curves: a crowded panel
 * draws 1-pixel lines, which read better where many overlap and which the
 * canvas strokes on its hairline path, over ten times faster in software
 * rendering than 1.5-pixel ones. */
export function linesOf(runs: number): { raw: number; smooth: number; faint: number } {
  return runs > CROWDED ? { raw: 1, smooth: 1, faint: 1 } : { raw: 1.5, smooth: 1.6, faint: 1 };
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

/** Axis tick labels that read as the values they stand at: the decimals
 * come from the tick step (`incr`, or the smallest gap between ticks) and
 * are the fewest that write every tick exactly, so a 0.25 step gives 0.25,
 * 0.50, 0.75. On a linear axis (`fixed`) every label gets the same number
 * of decimals; a log axis's 1, 2, 5 ticks keep their own. */
export function fmtTicks(vals: (number | null)[], incr?: number, fixed = true): string[] {
  const nums = vals.filter((v): v is number => v !== null && Number.isFinite(v));
  let step = incr !== undefined && Number.isFinite(incr) && incr > 0 ? incr : Infinity;
  for (let i = 1; i < nums.length; i++) {
    const d = Math.abs(nums[i] - nums[i - 1]);
    if (d > 0 && d < step) step = d;
  }
  if (!nums.length) return vals.map((v) => (v === null ? "" : fmtNum(v)));
  const big = Math.max(0, ...nums.map(Math.abs));
  // Tick values carry float noise (0.30000000000000004): "exact" is to a
  // millionth of the step.
  const tol = Number.isFinite(step) ? step * 1e-6 : Math.max(big * 1e-9, 1e-300);
  const exactWith = (write: (v: number) => string) => nums.every((v) => Math.abs(Number(write(v)) - v) <= tol);
  // Exponents where plain decimals would be too long to read (as fmtNum).
  if (big >= 1e6 || (big > 0 && big < 1e-3)) {
    let p = 0;
    while (p < 12 && !exactWith((v) => v.toExponential(p))) p++;
    return vals.map((v) => {
      if (v === null) return "";
      if (!Number.isFinite(v)) return fmtNum(v);
      if (Math.abs(v) <= tol) return "0";
      return v.toExponential(p).replace("e+", "e").replace(/\.?0+e/, "e");
    });
  }
  let d = 0;
  while (d < 12 && !exactWith((v) => v.toFixed(d))) d++;
  return vals.map((v) => {
    if (v === null) return "";
    if (!Number.isFinite(v)) return fmtNum(v);
    const x = Math.abs(v) <= tol ? 0 : v;
    return numberFormat(fixed ? d : 0, d).format(x);
  });
}

/** An en-US number format with these fraction digits, made once: making
 * one (what toLocaleString does on every call) costs far more than using it,
 * and axes format their ticks again on every redraw. */
const formats = new Map<string, Intl.NumberFormat>();
function numberFormat(min: number, max: number): Intl.NumberFormat {
  const key = `${min},${max}`;
  let f = formats.get(key);
  if (!f) {
    f = new Intl.NumberFormat("en-US", { minimumFractionDigits: min, maximumFractionDigits: max });
    formats.set(key, f);
  }
  return f;
}

/** "1 run", "2 runs", "1,200 runs": a count with its noun, singular for one. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${numberFormat(0, 0).format(n)} ${n === 1 ? one : many}`;
}

/** A signed difference in one notation for every size: 4 significant
 * digits in plain decimals (+0.0001978, −0.008333, +12.35), exponents only
 * past what plain decimals can show in a table cell; a real minus sign. */
export function fmtDelta(d: number): string {
  if (Number.isNaN(d)) return "NaN";
  if (!Number.isFinite(d)) return d > 0 ? "+∞" : "−∞";
  const sign = d > 0 ? "+" : d < 0 ? "−" : "";
  return sign + fmtSig(Math.abs(d));
}

/** A non-negative number to 4 significant digits, plain decimals between
 * 1e-6 and 1e15, thousands separated. */
export function fmtSig(a: number, digits = 4): string {
  if (a === 0) return "0";
  if (a < 1e-6 || a >= 1e15) return a.toExponential(digits - 1).replace("e+", "e").replace(/\.?0+e/, "e");
  const mag = Math.floor(Math.log10(a));
  const decimals = Math.max(0, digits - 1 - mag);
  const r = Number(a.toFixed(decimals));
  // Rounding can carry into a new digit (9.9996 → 10.000): one decimal fewer.
  const dec = r >= Math.pow(10, mag + 1) ? Math.max(0, decimals - 1) : decimals;
  return numberFormat(0, dec).format(r);
}
