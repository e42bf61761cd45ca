// The filter box: the query language of `labbook ls --filter`, validated by
// the server as the user types (debounced), with the server's one-line error
// and column, and autocompletion of field names from /keys.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { Keys } from "../api";
import { api, ApiError } from "../api";
import { quoteKey } from "../format";

type Suggestion = { text: string; hint: string };

export function fieldSuggestions(keys: Keys | undefined): Suggestion[] {
  if (!keys) return [];
  const out: Suggestion[] = [];
  for (const a of keys.attributes) out.push({ text: a, hint: "attribute" });
  for (const c of keys.config) out.push({ text: `config.${quoteKey(c.key)}`, hint: c.numeric ? "config · number" : "config" });
  for (const m of keys.metrics) {
    out.push({ text: `metrics.${quoteKey(m.key)}`, hint: "metric · last" });
  }
  for (const m of keys.metrics) {
    out.push({ text: `min(metrics.${quoteKey(m.key)})`, hint: "metric · min" });
    out.push({ text: `max(metrics.${quoteKey(m.key)})`, hint: "metric · max" });
  }
  for (const s of keys.summary) out.push({ text: `summary.${quoteKey(s.key)}`, hint: "summary" });
  return out;
}

const WORD = /[\p{L}\p{N}_.\/\-@:\[\]`(]/u;

/** The identifier being typed at `pos`: its start and text. */
function tokenAt(text: string, pos: number): { start: number; word: string } {
  let s = pos;
  while (s > 0 && WORD.test(text[s - 1])) s--;
  return { start: s, word: text.slice(s, pos) };
}

export function FilterBox({
  value,
  keys,
  onCommit,
  onValidity,
}: {
  value: string;
  keys: Keys | undefined;
  onCommit: (filter: string) => void;
  /** Told whether the box holds a filter the server accepts. */
  onValidity?: (ok: boolean) => void;
}) {
  const [text, setText] = useState(value);
  const [error, setError] = useState<ApiError | null>(null);
  const [checking, setChecking] = useState(false);
  const [cursor, setCursor] = useState(0);
  const [open, setOpen] = useState(false);
  const [active, setActive] = useState(0);
  const input = useRef<HTMLInputElement>(null);
  const valid = useRef<string | null>(null); // the last filter the server accepted
  useEffect(() => onValidity?.(error === null), [error === null]);
  const all = useMemo(() => fieldSuggestions(keys), [keys]);

  // Follow the URL (back button, links) without clobbering what is being typed.
  useEffect(() => {
    if (value.trim() !== text.trim()) setText(value);
  }, [value]);

  // Validate as the user types; commit valid filters to the URL. The
  // filter the page opened with (a link, the back button) is checked too,
  // at once, so a bad one is marked in the box rather than failing below it.
  useEffect(() => {
    const t = text.trim();
    const committed = t === value.trim();
    if (!t) {
      setError(null);
      if (!committed) {
        const timer = setTimeout(() => onCommit(""), 300);
        return () => clearTimeout(timer);
      }
      return;
    }
    if (committed && valid.current === t) {
      setError(null);
      return;
    }
    const ctl = new AbortController();
    const timer = setTimeout(
      () => {
        setChecking(true);
        api.validate({ filter: t }, ctl.signal).then(
          () => {
            setChecking(false);
            setError(null);
            valid.current = t;
            if (!committed) onCommit(t);
          },
          (e: unknown) => {
            if (ctl.signal.aborted) return;
            setChecking(false);
            setError(e instanceof ApiError ? e : new ApiError(String(e), 0, "NETWORK"));
          },
        );
      },
      committed ? 0 : 300,
    );
    return () => {
      clearTimeout(timer);
      ctl.abort();
    };
  }, [text, value]);

  // "/" focuses the filter from anywhere on the page.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement | null;
      if (e.key !== "/" || e.metaKey || e.ctrlKey || t?.closest("input, textarea, select, [contenteditable]")) return;
      e.preventDefault();
      input.current?.focus();
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, []);

  const tok = tokenAt(text, cursor);
  const matches = useMemo(() => {
    const w = tok.word.replace(/^\(/, "").toLowerCase();
    if (!w) return [];
    return all.filter((s) => s.text.toLowerCase().includes(w) && s.text.toLowerCase() !== w).slice(0, 12);
  }, [tok.word, all]);
  const showList = open && matches.length > 0;

  const accept = (s: Suggestion) => {
    const start = tok.word.startsWith("(") ? tok.start + 1 : tok.start;
    const next = text.slice(0, start) + s.text + " " + text.slice(cursor);
    const pos = start + s.text.length + 1;
    // The caret is placed now, not on the next frame: keys typed right
    // after Tab would otherwise land before a caret moved back behind them.
    const el = input.current;
    if (el) {
      el.value = next;
      el.focus();
      el.setSelectionRange(pos, pos);
    }
    setText(next);
    setCursor(pos);
    setOpen(false);
  };

  const onKey = (e: KeyboardEvent) => {
    if (showList) {
      if (e.key === "ArrowDown") {
        setActive((a) => (a + 1) % matches.length);
        e.preventDefault();
        return;
      }
      if (e.key === "ArrowUp") {
        setActive((a) => (a - 1 + matches.length) % matches.length);
        e.preventDefault();
        return;
      }
      if (e.key === "Tab" || (e.key === "Enter" && matches[active])) {
        accept(matches[active]);
        e.preventDefault();
        return;
      }
      if (e.key === "Escape") {
        setOpen(false);
        return;
      }
    }
    if (e.key === "Escape" && text) setText("");
  };

  const col = error?.column;
  return (
    <div class={`filterbox ${error ? "invalid" : ""}`}>
      <div class="filter-input-wrap">
        <svg class="filter-icon" width="14" height="14" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round">
          <path d="M3 5h18l-7 8v6l-4 2v-8z" />
        </svg>
        <input
          ref={input}
          class="filter-input mono"
          data-testid="filter-input"
          aria-label="Filter runs"
          aria-invalid={error ? "true" : "false"}
          aria-describedby={error ? "filter-error" : undefined}
          placeholder='Filter runs: config.lr > 0.01 and status = "finished"   (press /)'
          spellcheck={false}
          autocomplete="off"
          value={text}
          onInput={(e) => {
            const el = e.target as HTMLInputElement;
            setText(el.value);
            setCursor(el.selectionStart ?? el.value.length);
            setOpen(true);
            setActive(0);
          }}
          onKeyDown={onKey}
          onKeyUp={(e) => setCursor((e.target as HTMLInputElement).selectionStart ?? 0)}
          onClick={(e) => setCursor((e.target as HTMLInputElement).selectionStart ?? 0)}
          onBlur={() => setTimeout(() => setOpen(false), 150)}
        />
        {checking && <span class="spinner sm" />}
        {text && (
          <button class="icon-btn clear" title="Clear the filter" onClick={() => setText("")}>
            ×
          </button>
        )}
      </div>
      {showList && (
        <div class="popover suggest" role="listbox" data-testid="filter-suggestions">
          {matches.map((m, i) => (
            <div
              key={m.text}
              class={`pop-item ${i === active ? "active" : ""}`}
              onMouseDown={(e) => {
                e.preventDefault();
                accept(m);
              }}
            >
              <span class="mono">{m.text}</span>
              <span class="muted">{m.hint}</span>
            </div>
          ))}
        </div>
      )}
      {error && (
        <div class="filter-error" id="filter-error" data-testid="filter-error" role="alert">
          {col !== undefined && col > 0 && (
            <div class="mono caret-line" aria-hidden="true">
              <span class="caret-pad">{text.slice(0, col - 1).replace(/[^\t]/g, " ")}</span>^
            </div>
          )}
          <span>{error.message}</span>
        </div>
      )}
    </div>
  );
}
