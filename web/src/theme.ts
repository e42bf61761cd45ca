// Theme: the only state kept outside the URL (localStorage), defaulting to
// the system's prefers-color-scheme.
const KEY = "labbook.theme";
export type Theme = "light" | "dark";

type Listener = (t: Theme) => void;
const listeners = new Set<Listener>();

function stored(): Theme | null {
  try {
    const v = localStorage.getItem(KEY);
    return v === "light" || v === "dark" ? v : null;
  } catch {
    return null;
  }
}

const media = window.matchMedia?.("(prefers-color-scheme: dark)");

export function currentTheme(): Theme {
  return stored() ?? (media?.matches ? "dark" : "light");
}

function apply() {
  const t = currentTheme();
  document.documentElement.dataset.theme = t;
  document.documentElement.style.colorScheme = t;
  for (const l of listeners) l(t);
}

export function setTheme(t: Theme) {
  try {
    localStorage.setItem(KEY, t);
  } catch {
    /* private mode: the toggle still works for this page */
    document.documentElement.dataset.theme = t;
  }
  apply();
}

export function onTheme(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

media?.addEventListener?.("change", apply);
apply();

/** A CSS custom property's value, for canvas drawing. */
export function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}
