// Replays (issue 12) as the dashboard reads them: a verdict's kind and
// text, the check's numbers, and what differs between a run and its replay
// (environment, code, config, command). No DOM: the pages render these.
import type { ConfigValue, Environment, ReplayVerdict, RunDetail } from "./api";

/** What a verdict says, for its badge: passed (bit for bit, or within the
 * tolerance), diverged, a metric only one run has, or no check yet. */
export type VerdictKind = "reproduced" | "within" | "diverged" | "missing" | "unchecked";

/** The kind of a verdict: the check's own, or the text of the
 * `labbook.replay_verdict` tag ("reproduced within tolerance",
 * "diverged at step 12", "missing metric (not in the replay)"). */
export function verdictKind(v: ReplayVerdict | string | null | undefined): VerdictKind {
  if (v === null || v === undefined || v === "") return "unchecked";
  if (typeof v !== "string") return v.state === "within_tolerance" ? "within" : v.state;
  if (v.startsWith("reproduced within")) return "within";
  if (v.startsWith("reproduced")) return "reproduced";
  if (v.startsWith("diverged")) return "diverged";
  if (v.startsWith("missing")) return "missing";
  return "unchecked";
}

/** A verdict in words, as `labbook check-replay` prints it. */
export function verdictText(v: ReplayVerdict): string {
  switch (v.state) {
    case "reproduced":
      return "reproduced";
    case "within_tolerance":
      return "reproduced within tolerance";
    case "diverged":
      return `diverged at step ${v.step}`;
    case "missing":
      return v.in_replay ? "missing metric (not in the replay)" : "missing metric (not in the original)";
  }
}

/** The step a verdict diverged at, if it did. */
export function divergenceStep(v: ReplayVerdict | null | undefined): number | null {
  return v && v.state === "diverged" ? v.step : null;
}

/** The step of "diverged at step 12" (a tag's text). */
export function divergenceStepOfText(text: string | null | undefined): number | null {
  const m = /^diverged at step (-?\d+)/.exec(text ?? "");
  return m ? Number(m[1]) : null;
}

/** A tolerance part as the CLI prints it: 0, or `1e-6` (no `+`). */
function tolPart(v: number): string {
  return v === 0 ? "0" : v.toExponential().replace("e+", "e");
}

export function toleranceText(t: { rel: number; abs: number }): string {
  return `rel=${tolPart(t.rel)}, abs=${tolPart(t.abs)}`;
}

/** A command line as a shell would take it. */
export function shellLine(args: string[] | undefined): string {
  return (args ?? []).map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
}

// ---------------------------------------------------------------------------
// What differs between two runs.

/** One aspect of the two runs side by side: `same` when they agree, then
 * `original` is the value both have. */
export type Aspect = { key: string; label: string; same: boolean; original: string; replay: string };
export type PackageChange = { name: string; original: string | null; replay: string | null };
export type ConfigChange = { key: string; original: ConfigValue | undefined; replay: ConfigValue | undefined };
export type EnvVarChange = { name: string; original: string | null; replay: string | null };

export type RunDifferences = {
  /** Python, GPUs, host, git commit, working tree, code snapshot, command. */
  aspects: Aspect[];
  /** Packages whose versions differ, or that only one run has. */
  packages: PackageChange[];
  /** How many packages the original recorded (0 when none were). */
  packageCount: number;
  config: ConfigChange[];
  envVars: EnvVarChange[];
  /** Whether each run recorded an environment at all. */
  recorded: { original: boolean; replay: boolean };
};

const NONE = "—";

function pythonOf(env: Environment | null): string {
  const py = env?.python;
  if (!py) return NONE;
  return [py.implementation, py.version].filter(Boolean).join(" ") || NONE;
}

function gpusOf(env: Environment | null): string {
  if (!env) return NONE;
  const gpus = env.gpus ?? [];
  if (!gpus.length) return "none detected";
  return gpus
    .map((g) => {
      const driver = g.driver_version ?? g.driver;
      const cuda = g.cuda_version ?? g.cuda;
      return [g.name ?? "GPU", driver && `driver ${driver}`, cuda && `CUDA ${cuda}`].filter(Boolean).join(" · ");
    })
    .join("; ");
}

function commitOf(env: Environment | null): string {
  const g = env?.git;
  if (!g) return "not in a git repository";
  if (!g.commit) return "no commit yet";
  return g.branch ? `${g.commit} (${g.branch})` : g.commit;
}

/** The working tree: clean, or dirty with a digest-free summary of the
 * diff (its changed and added lines), so two dirty trees compare by their
 * changes, not only by being dirty. */
function treeOf(env: Environment | null): string {
  const g = env?.git;
  if (!g) return NONE;
  const untracked = g.untracked?.length ?? 0;
  const extra = untracked ? `, ${untracked} untracked file${untracked === 1 ? "" : "s"}` : "";
  if (!g.dirty) return `clean${extra}`;
  const lines = (g.diff ?? "").split("\n");
  const adds = lines.filter((l) => l.startsWith("+") && !l.startsWith("+++")).length;
  const dels = lines.filter((l) => l.startsWith("-") && !l.startsWith("---")).length;
  return `dirty: +${adds} −${dels}${extra}`;
}

function codeOf(env: Environment | null): string {
  const c = env?.code;
  if (!c) return "no snapshot";
  if (!c.version) return c.error ? `not kept: ${c.error}` : "nothing to keep (no changed or untracked files)";
  const files = c.files ?? 0;
  return `${c.version} · ${c.digest ? c.digest.slice(0, 12) : "no digest"} · ${files} file${files === 1 ? "" : "s"}`;
}

function hostOf(r: RunDetail): string {
  return r.environment?.host ?? r.host ?? NONE;
}

function normalize(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, "-");
}

function packagesOf(env: Environment | null): Map<string, { name: string; version: string }> {
  return new Map((env?.python?.packages ?? []).map((p) => [normalize(p.name), p]));
}

function same(a: ConfigValue | undefined, b: ConfigValue | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Two aspects that differ only where both are unknown are not shown as
 * differing. */
function aspect(key: string, label: string, original: string, replay: string): Aspect {
  return { key, label, same: original === replay, original, replay };
}

/** Everything that differs between a run and its replay (or any two runs). */
export function runDifferences(a: RunDetail, b: RunDetail): RunDifferences {
  const ea = a.environment;
  const eb = b.environment;
  const aspects: Aspect[] = [
    aspect("python", "Python", pythonOf(ea), pythonOf(eb)),
    aspect("gpus", "GPUs and driver", gpusOf(ea), gpusOf(eb)),
    aspect("host", "Host", hostOf(a), hostOf(b)),
    aspect("commit", "Git commit", commitOf(ea), commitOf(eb)),
    aspect("tree", "Working tree", treeOf(ea), treeOf(eb)),
    aspect("code", "Code snapshot", codeOf(ea), codeOf(eb)),
    aspect("command", "Command", shellLine(ea?.command) || NONE, shellLine(eb?.command) || NONE),
  ];
  const pa = packagesOf(ea);
  const pb = packagesOf(eb);
  const packages: PackageChange[] = [];
  for (const k of [...new Set([...pa.keys(), ...pb.keys()])].sort()) {
    const x = pa.get(k);
    const y = pb.get(k);
    if (x?.version === y?.version) continue;
    packages.push({ name: (x ?? y)?.name ?? k, original: x?.version ?? null, replay: y?.version ?? null });
  }
  const config: ConfigChange[] = [];
  for (const k of [...new Set([...Object.keys(a.config), ...Object.keys(b.config)])].sort()) {
    if (!same(a.config[k], b.config[k])) config.push({ key: k, original: a.config[k], replay: b.config[k] });
  }
  const va = ea?.env_vars ?? {};
  const vb = eb?.env_vars ?? {};
  const envVars: EnvVarChange[] = [];
  for (const k of [...new Set([...Object.keys(va), ...Object.keys(vb)])].sort()) {
    if (va[k] !== vb[k]) envVars.push({ name: k, original: va[k] ?? null, replay: vb[k] ?? null });
  }
  return { aspects, packages, packageCount: pa.size, config, envVars, recorded: { original: !!ea, replay: !!eb } };
}
