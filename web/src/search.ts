// Sweeps, studies and the morning report: what their pages compute from
// the API's answers (docs/API.md), kept apart from drawing them.
import type { ConfigValue, Direction, Domain, StudyBrief, Trial, TrialState } from "./api";
import { fmtNum, fmtValue } from "./format";

/** Trial states in the order a count bar stacks them: what ended well,
 * what was stopped, what went wrong, what is still to come. */
export const TRIAL_STATES: TrialState[] = ["complete", "pruned", "failed", "crashed", "running", "waiting"];

/** "↓ minimize" / "↑ maximize". */
export function arrow(direction: Direction): string {
  return direction === "maximize" ? "↑" : "↓";
}

/** Whether `a` is better than `b` in this direction. */
export function better(direction: Direction, a: number, b: number): boolean {
  return direction === "maximize" ? a > b : a < b;
}

/** A parameter value as a category's label (and key). */
export function catLabel(v: ConfigValue | undefined): string {
  if (v === undefined) return "—";
  return fmtValue(v);
}

/** How a parameter's values lie along an axis: numbers (on a log scale
 * when the domain says so), or categories in the domain's order. */
export type ParamAxis = { kind: "num"; log: boolean; lo: number; hi: number } | { kind: "cat"; cats: string[] };

/** The axis of parameter `name`: its domain where the API knows it, else
 * what the trials' values are (numbers, or anything else as categories). */
export function paramAxis(domain: Domain | null | undefined, values: ConfigValue[]): ParamAxis {
  const nums = values.filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  if (domain && (domain.type === "float" || domain.type === "int")) {
    const log = domain.log && domain.low > 0;
    const lo = Math.min(domain.low, ...nums);
    const hi = Math.max(domain.high, ...nums);
    return { kind: "num", log: log && lo > 0, lo, hi };
  }
  if (domain && domain.type === "categorical") {
    const cats = domain.choices.map(catLabel);
    for (const v of values) {
      const c = catLabel(v);
      if (!cats.includes(c)) cats.push(c);
    }
    return { kind: "cat", cats };
  }
  if (values.length > 0 && nums.length === values.length) {
    const lo = Math.min(...nums);
    const hi = Math.max(...nums);
    return { kind: "num", log: false, lo, hi };
  }
  const cats: string[] = [];
  for (const v of values) {
    const c = catLabel(v);
    if (!cats.includes(c)) cats.push(c);
  }
  return { kind: "cat", cats };
}

/** A domain as a line of text: `1e-5 … 0.1, log`, `16 … 256 step 16`,
 * `sgd | adamw`. */
export function domainText(d: Domain | null | undefined): string {
  if (!d) return "";
  if (d.type === "categorical") return d.choices.map(catLabel).join(" | ");
  const step = d.step !== undefined && d.step !== null && !(d.type === "int" && d.step === 1) ? ` step ${fmtNum(d.step)}` : "";
  return `${fmtNum(d.low)} … ${fmtNum(d.high)}${step}${d.log ? ", log" : ""}`;
}

/** A deterministic offset in [-0.5, 0.5) for trial `n`, so points of one
 * category spread out instead of piling up. */
export function jitter(n: number): number {
  let h = Math.imul(n + 1, 0x9e3779b1) >>> 0;
  h = (h ^ (h >>> 15)) >>> 0;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h = (h ^ (h >>> 13)) >>> 0;
  return (h % 1000) / 1000 - 0.5;
}

/** Trials sorted by a key of the table: `number`, `value`, `state` or
 * `p.<param>`, a leading `-` for descending. Trials without a value sort
 * last either way. */
export function sortTrials(trials: Trial[], sort: string): Trial[] {
  const desc = sort.startsWith("-");
  const key = desc ? sort.slice(1) : sort;
  const get = (t: Trial): number | string | null => {
    if (key === "value") return t.value;
    if (key === "state") return TRIAL_STATES.indexOf(t.state);
    if (key.startsWith("p.")) {
      const v = t.params[key.slice(2)];
      return v === undefined || v === null ? null : typeof v === "number" ? v : catLabel(v);
    }
    return t.number;
  };
  return [...trials].sort((a, b) => {
    const x = get(a);
    const y = get(b);
    if (x === null && y === null) return a.number - b.number;
    if (x === null) return 1;
    if (y === null) return -1;
    const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
    return (desc ? -c : c) || a.number - b.number;
  });
}

/** The filter (the runs page's query language) that picks a search's runs. */
export function runsFilter(s: Pick<StudyBrief, "kind" | "id">): string {
  return `tags.labbook.${s.kind === "sweep" ? "sweep" : "study"} = ${JSON.stringify(s.id)}`;
}

// ---------------------------------------------------------------------------
// The report's time window

export type Preset = "18h" | "12h" | "24h" | "7d";
export const PRESETS: { id: Preset; label: string }[] = [
  { id: "18h", label: "Since 18:00 yesterday" },
  { id: "12h", label: "Last 12 h" },
  { id: "24h", label: "Last 24 h" },
  { id: "7d", label: "Last 7 days" },
];

export type Window = { since: number; until: number; preset: Preset | null };

/** The window the URL names: a preset (`w`, relative to `now`), or `since`
 * and `until` (epoch ms; until defaults to now); the last 24 h by default. */
export function reportWindow(params: URLSearchParams, now: number): Window {
  const since = Number(params.get("since"));
  const untilParam = params.get("until");
  const until = untilParam !== null && untilParam !== "" && Number.isFinite(Number(untilParam)) ? Number(untilParam) : now;
  if (params.get("since") && Number.isFinite(since)) return { since, until, preset: null };
  const w = params.get("w");
  const preset: Preset = w === "18h" || w === "12h" || w === "7d" ? w : "24h";
  return { since: presetSince(preset, now), until: now, preset };
}

export function presetSince(p: Preset, now: number): number {
  if (p === "12h") return now - 12 * 3_600_000;
  if (p === "7d") return now - 7 * 86_400_000;
  if (p === "24h") return now - 86_400_000;
  const d = new Date(now);
  d.setDate(d.getDate() - 1);
  d.setHours(18, 0, 0, 0);
  return d.getTime();
}

/** Epoch ms as a datetime-local input's value (local time, to the minute). */
export function toLocalInput(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A datetime-local input's value as epoch ms; null when it is no time. */
export function fromLocalInput(v: string): number | null {
  if (!v) return null;
  const ms = new Date(v).getTime();
  return Number.isFinite(ms) ? ms : null;
}

/** "Tue 18:00 → Wed 07:12" for a window within a week, dates past that. */
export function windowText(since: number, until: number): string {
  const a = new Date(since);
  const b = new Date(until);
  const day = (d: Date) => d.toLocaleDateString("en-US", { weekday: "short", month: "short", day: "numeric" });
  const time = (d: Date) => d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
  const same = a.toDateString() === b.toDateString();
  return same ? `${day(a)}, ${time(a)} → ${time(b)}` : `${day(a)} ${time(a)} → ${day(b)} ${time(b)}`;
}

/** A queued job's command as one line. */
export function commandText(words: string[] | null): string {
  if (!words) return "";
  return words
    .map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : /^[^"$`\\]*$/.test(w) ? `"${w}"` : `'${w.replace(/'/g, `'\\''`)}'`))
    .join(" ");
}
