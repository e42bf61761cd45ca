// A run's replays on its page (issue 12): the run it replays, with its
// verdict and what it set, and the replays of it, each with its verdict and
// a link to the replay's view (ReplayView.tsx).
import type { ReplayBrief, ReplayVerdict, RunDetail, RunReplays } from "../api";
import { ApiError, api } from "../api";
import { fmtDate, fmtRelative, plural } from "../format";
import { replayPath, runPath } from "../router";
import { verdictKind, verdictText } from "../replay";
import { ErrorBox, Section, StatusPill, useAsync } from "./common";
import "./replay.css";

/** The tag a replay's verdict is kept in. */
export const VERDICT_TAG = "labbook.replay_verdict";

/** A verdict as a badge: green when it reproduced (bit for bit or within
 * the tolerance), red when it diverged, amber for a metric only one run
 * has, gray when nothing was checked. */
export function VerdictBadge({ verdict, testid }: { verdict: ReplayVerdict | string | null | undefined; testid?: string }) {
  const kind = verdictKind(verdict);
  const text = verdict === null || verdict === undefined || verdict === "" ? "not checked" : typeof verdict === "string" ? verdict : verdictText(verdict);
  const cls = kind === "reproduced" || kind === "within" ? "ok" : kind === "diverged" ? "danger" : kind === "missing" ? "warn" : "subtle";
  return (
    <span class={`badge verdict-badge ${cls}`} data-verdict={kind} data-testid={testid} title={kind === "unchecked" ? "No check stored: labbook check-replay ORIGINAL REPLAY makes one" : undefined}>
      <VerdictGlyph kind={kind} />
      {text}
    </span>
  );
}

function VerdictGlyph({ kind }: { kind: string }) {
  if (kind === "unchecked") return null;
  return (
    <svg class="verdict-glyph" width="10" height="10" viewBox="0 0 10 10" aria-hidden="true">
      {kind === "reproduced" || kind === "within" ? (
        <path d="M1.5 5.2l2.3 2.3 4.7-5" />
      ) : kind === "diverged" ? (
        <path d="M1 8.5l3-3 2 1.5 3-5" />
      ) : (
        <path d="M5 1.5v4.2M5 8.2v.3" />
      )}
    </svg>
  );
}

/** The replays section of a run's page; nothing when the run is no replay
 * and has none. */
export function RunReplays({ r }: { r: RunDetail }) {
  const rp = useAsync((signal) => api.runReplays(r.id, signal), [r.id]);
  if (rp.error)
    return (
      <Section title="Replays">
        <ErrorBox error={rp.error} retry={rp.reload} />
      </Section>
    );
  const d = rp.data;
  if (!d || (!d.replay_of && d.replays.length === 0)) return null;
  return (
    <Section
      title="Replays"
      id="replays"
      right={d.replays_total > 0 ? <span class="muted num">{plural(d.replays_total, "replay")}</span> : undefined}
    >
      {d.replay_of && <ReplayOf r={r} d={d} />}
      {d.replays.length > 0 && <ReplayList r={r} replays={d.replays} total={d.replays_total} after={!!d.replay_of} />}
    </Section>
  );
}

/** "Replay of <the original>", this replay's verdict and what it set. */
function ReplayOf({ r, d }: { r: RunDetail; d: RunReplays }) {
  const of = d.replay_of;
  const id = of?.id ?? "";
  const missing = !!of && "missing" in of;
  // Whether the original was deleted (the brief does not say): its record.
  const original = useAsync((signal) => (id && !missing ? api.run(id, signal) : Promise.resolve(null)), [id, missing]);
  if (!of) return null;
  const verdict = d.check?.original === id ? d.check.verdict : (r.kv_tags?.[VERDICT_TAG] ?? null);
  const set = r.kv_tags?.["labbook.replay_set"] ?? null;
  const gone = missing || (original.error instanceof ApiError && original.error.status === 404);
  const deleted = original.data?.deleted ?? false;
  return (
    <div class="replay-of" data-testid="replay-of" data-state={gone ? "missing" : deleted ? "deleted" : "ok"}>
      <div class="replay-of-line">
        <span class="replay-of-label">Replay of</span>
        {gone ? (
          <>
            <span class="mono">{id}</span>
            <span class="badge warn" title="No run has this id any more: it was deleted for good (labbook rm --purge)">
              not in the store
            </span>
          </>
        ) : (
          <>
            <a href={runPath(r.project, id)} data-testid="replay-of-link">
              {"name" in of ? of.name : id}
            </a>
            <span class="mono muted">{id}</span>
            {deleted && <span class="badge danger">deleted</span>}
          </>
        )}
        <VerdictBadge verdict={verdict} testid="replay-of-verdict" />
        {set && (
          <span class="replay-set" data-testid="replay-of-set">
            what if <code>{set}</code>
          </span>
        )}
      </div>
      <a class="btn btn-sm" href={replayPath(r.project, id, r.id)} data-testid="replay-view-link">
        {verdict ? "Open the check" : "Compare with the original"} →
      </a>
    </div>
  );
}

function ReplayList({ r, replays, total, after }: { r: RunDetail; replays: ReplayBrief[]; total: number; after: boolean }) {
  return (
    <div class={`replays-wrap ${after ? "after" : ""}`}>
      {after && <div class="mini-head">Replays of this run</div>}
      <table class="table replays-table" data-testid="replays">
        <thead>
          <tr>
            <th>Replay</th>
            <th>Started</th>
            <th>What if</th>
            <th>Verdict</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {replays.map((x) => (
            <tr key={x.id} data-run={x.id}>
              <td>
                <span class="child-name">
                  <StatusPill status={x.status} />
                  <a href={runPath(r.project, x.id)} data-testid="replay-link">
                    {x.name}
                  </a>
                </span>
              </td>
              <td class="muted" title={fmtDate(x.created_ms)}>
                {fmtRelative(x.created_ms)}
              </td>
              <td data-col="set">{x.set ? <code>{x.set}</code> : <span class="muted">same config</span>}</td>
              <td data-col="verdict">
                <VerdictBadge verdict={x.verdict} />
              </td>
              <td class="num">
                <a href={replayPath(r.project, r.id, x.id)} data-testid="replay-view-link">
                  {x.verdict ? "Check" : "Compare"} →
                </a>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {total > replays.length && (
        <p class="muted small">
          The newest {replays.length} of {total} replays.
        </p>
      )}
    </div>
  );
}
