// Reading a field (`config.lr`, `metrics.val/acc`, `min(metrics.loss)`,
// `summary.best`, `group`, …) off a run, for the parallel and scatter plots.
import type { ConfigValue, Keys, Run } from "./api";
import { isNum, num } from "./api";

export type FieldValue = number | string | null;

export function fieldValue(r: Run, field: string): FieldValue {
  const m = /^(min|max)\(metrics\.(.+)\)$/.exec(field);
  if (m) {
    const s = r.metrics[m[2]];
    const v = s ? (m[1] === "min" ? s.min : s.max) : null;
    return v === null ? null : num(v);
  }
  if (field.startsWith("metrics.")) {
    const s = r.metrics[field.slice(8)];
    return s ? num(s.last) : null;
  }
  if (field.startsWith("config.")) return scalar(r.config[field.slice(7)]);
  if (field.startsWith("summary.")) return scalar(r.summary[field.slice(8)]);
  switch (field) {
    case "group":
      return r.group;
    case "status":
      return r.status;
    case "tags":
      return r.tags.length ? r.tags.join(", ") : null;
    case "duration":
      return r.duration_ms / 1000;
    case "created":
      return r.created_ms;
    case "host":
      return r.host;
    case "name":
      return r.name;
    default:
      return null;
  }
}

function scalar(v: ConfigValue | undefined): FieldValue {
  if (v === undefined || v === null) return null;
  if (typeof v === "number") return v;
  if (isNum(v)) return num(v);
  if (typeof v === "boolean") return String(v);
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

export function fieldLabel(field: string): string {
  return field.replace(/^config\./, "").replace(/^metrics\./, "").replace(/^summary\./, "summary:");
}

/** Axis choices: numeric-ish fields first. */
export function fieldChoices(keys: Keys | undefined): { value: string; label: string; group: string }[] {
  if (!keys) return [];
  return [
    ...keys.config.map((c) => ({ value: `config.${c.key}`, label: c.key, group: "Config" })),
    ...keys.metrics.map((m) => ({ value: `metrics.${m.key}`, label: m.key, group: "Metrics (last)" })),
    ...keys.metrics.map((m) => ({ value: `min(metrics.${m.key})`, label: `min ${m.key}`, group: "Metrics (min)" })),
    ...keys.metrics.map((m) => ({ value: `max(metrics.${m.key})`, label: `max ${m.key}`, group: "Metrics (max)" })),
    ...keys.summary.map((s) => ({ value: `summary.${s.key}`, label: s.key, group: "Summary" })),
    { value: "duration", label: "duration (s)", group: "Attributes" },
    { value: "created", label: "created", group: "Attributes" },
  ];
}

/** A scale over a field's values: linear for numbers, ordinal for the rest. */
export type Scale = { kind: "num"; lo: number; hi: number; log: boolean; integer?: boolean } | { kind: "cat"; cats: string[] };

export function makeScale(values: FieldValue[], log = false): Scale {
  const nums = values.filter((v): v is number => typeof v === "number" && Number.isFinite(v) && (!log || v > 0));
  const strs = values.filter((v): v is string => typeof v === "string");
  if (strs.length > nums.length) return { kind: "cat", cats: [...new Set(strs)].sort() };
  if (!nums.length) return { kind: "num", lo: 0, hi: 1, log: false };
  let lo = Math.min(...nums);
  let hi = Math.max(...nums);
  if (lo === hi) {
    lo -= Math.abs(lo) * 0.1 || 1;
    hi += Math.abs(hi) * 0.1 || 1;
    if (log && lo <= 0) lo = hi / 100;
  }
  return { kind: "num", lo, hi, log };
}

/** A scale that reads like the values: log when they are all positive and
 * span two decades or more (learning rates, weight decays), and marked
 * integer when every value is a whole number (seeds, depths, widths). */
export function autoScale(values: FieldValue[]): Scale {
  const lin = makeScale(values);
  if (lin.kind !== "num") return lin;
  const nums = values.filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  const integer = nums.length > 0 && nums.every((v) => Number.isInteger(v));
  // One value: makeScale pads it by 10%; whole numbers are padded by one so
  // the ends stay whole.
  if (integer && Math.min(...nums) === Math.max(...nums)) return { kind: "num", lo: nums[0] - 1, hi: nums[0] + 1, log: false, integer };
  if (nums.length > 1 && nums.every((v) => v > 0) && lin.hi / lin.lo >= 100) {
    const log = makeScale(values, true);
    if (log.kind === "num") return { ...log, integer };
  }
  return { ...lin, integer };
}

/** 0..1 along the scale (null for values it cannot place); ±∞ clamp to the ends. */
export function position(s: Scale, v: FieldValue): number | null {
  if (v === null) return null;
  if (s.kind === "cat") {
    const i = s.cats.indexOf(String(v));
    if (i < 0) return null;
    return s.cats.length === 1 ? 0.5 : i / (s.cats.length - 1);
  }
  if (typeof v !== "number" || Number.isNaN(v)) return null;
  if (v === Infinity) return 1;
  if (v === -Infinity) return 0;
  if (s.log) {
    if (v <= 0) return null;
    return (Math.log(v) - Math.log(s.lo)) / (Math.log(s.hi) - Math.log(s.lo) || 1);
  }
  return (v - s.lo) / (s.hi - s.lo || 1);
}

export function invert(s: Scale, t: number): number {
  if (s.kind === "cat") return t;
  if (s.log) return Math.exp(Math.log(s.lo) + t * (Math.log(s.hi) - Math.log(s.lo)));
  return s.lo + t * (s.hi - s.lo);
}

/** A sequential ramp (indigo → blue → teal → green → amber → red) that
 * keeps its contrast on light and dark backgrounds. */
export const RAMP = ["#4c3fb0", "#2b8cbe", "#1fa187", "#7cb342", "#f5a623", "#e8453c"];

export function ramp(t: number): string {
  const stops = RAMP.map((h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)));
  const x = Math.max(0, Math.min(1, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const c = stops[i].map((a, k) => Math.round(a + (stops[i + 1][k] - a) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/** Config keys whose values differ across `runs`, in key order. */
export function varyingConfig(keys: Keys | undefined, runs: Run[]): string[] {
  if (!keys) return [];
  return keys.config
    .map((c) => c.key)
    .filter((k) => new Set(runs.map((r) => JSON.stringify(r.config[k] ?? null))).size > 1);
}

/** The metric to show by default: a validation metric when there is one. */
export function preferredMetric(keys: Keys | undefined): string | undefined {
  const ms = keys?.metrics.map((m) => m.key).filter((k) => !k.startsWith("sys/")) ?? [];
  return ms.find((k) => /^(val|valid|validation|eval|test)[/_.]/.test(k)) ?? ms[0];
}
