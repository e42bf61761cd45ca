// An HTML artifact (estimator.html, a report) made fit for the preview
// frame, `<iframe sandbox="" srcdoc=…>`.
//
// The sandbox is what keeps the file's scripts from running: without
// `allow-scripts` nothing in the frame executes, and its opaque origin
// reaches neither the dashboard nor the API. This rewrite is the second
// layer, and it exists for a reason of its own: a srcdoc frame inherits the
// dashboard's Content-Security-Policy, so every inline style, event handler
// and remote image in the file would be refused with a violation report.
// Parsing the file with the DOM (DOMParser, DOMPurify) reports the same
// violations in the page itself, so the file is rewritten as text: a small
// tokenizer that follows HTML's rules for tags and attributes and emits
// only tags it has rebuilt from allowed attributes, and text in which every
// `<` is escaped. Whatever it misreads, its output holds no markup it did
// not write.

/** Elements dropped with everything inside them (raw text, or content that
 * loads or runs something). */
const DROP_WITH_CONTENT = new Set(["script", "style", "iframe", "frame", "frameset", "noembed", "noframes", "object", "applet", "template"]);
/** Elements dropped, their content kept. */
const DROP_TAG = new Set(["link", "meta", "base", "embed", "param", "portal", "html", "head", "body"]);
/** Attributes that load, run or restyle something. */
const DROP_ATTR = new Set(["style", "srcset", "ping", "background", "poster", "formaction", "action", "http-equiv", "lowsrc", "dynsrc", "nonce", "integrity", "codebase", "manifest"]);
/** Attributes holding a URL. */
const URL_ATTR = new Set(["src", "href", "xlink:href", "data", "cite", "longdesc", "usemap"]);

function isTagStart(c: string | undefined): boolean {
  return !!c && /[A-Za-z]/.test(c);
}

function escapeAttr(v: string): string {
  return v.replace(/"/g, "&quot;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** A URL attribute's value as the frame may keep it: in-page fragments, and
 * images given inline as data. Anything else would navigate the frame or
 * fetch from a host (refused by the policy, with a report). */
function keepUrl(tag: string, name: string, value: string): boolean {
  const v = value.trim().toLowerCase();
  if (v.startsWith("#")) return name === "href" || name === "xlink:href";
  if (tag === "img" && name === "src") return /^data:image\/(png|gif|jpe?g|webp|bmp);/.test(v);
  return false;
}

type Attr = { name: string; value: string | null };

/** Reads a tag's attributes from `s` at `i` (just past the tag name), as
 * HTML's tokenizer does; returns them and the index past the closing `>`
 * (or -1 when the text ends first). */
function readAttrs(s: string, i: number): { attrs: Attr[]; end: number } {
  const attrs: Attr[] = [];
  const n = s.length;
  for (;;) {
    while (i < n && /[\s/]/.test(s[i])) i++;
    if (i >= n) return { attrs, end: -1 };
    if (s[i] === ">") return { attrs, end: i + 1 };
    // A name runs to whitespace, `/`, `>` or `=` (a leading `=` belongs to it).
    let j = i + 1;
    while (j < n && !/[\s/>=]/.test(s[j])) j++;
    const name = s.slice(i, j).toLowerCase();
    i = j;
    while (i < n && /\s/.test(s[i])) i++;
    if (s[i] !== "=") {
      attrs.push({ name, value: null });
      continue;
    }
    i++;
    while (i < n && /\s/.test(s[i])) i++;
    if (i >= n) return { attrs, end: -1 };
    const q = s[i];
    if (q === '"' || q === "'") {
      const close = s.indexOf(q, i + 1);
      if (close < 0) return { attrs, end: -1 };
      attrs.push({ name, value: s.slice(i + 1, close) });
      i = close + 1;
    } else {
      let k = i;
      while (k < n && !/[\s>]/.test(s[k])) k++;
      attrs.push({ name, value: s.slice(i, k) });
      i = k;
    }
  }
}

/** The HTML `text` with no scripts, styles, event handlers or references
 * to other resources; what is left renders in the preview frame without a
 * single policy violation. */
export function inertHtml(text: string): string {
  const s = text;
  const n = s.length;
  let out = "";
  let i = 0;
  const textUntil = (j: number) => {
    out += s.slice(i, j).replace(/</g, "&lt;");
    i = j;
  };
  while (i < n) {
    const lt = s.indexOf("<", i);
    if (lt < 0) {
      textUntil(n);
      break;
    }
    textUntil(lt);
    const c1 = s[lt + 1];
    if (s.startsWith("<!--", lt)) {
      // A comment, dropped; `<!-->` and `<!--->` end at once.
      const m = /^<!--(?:-?>|[\s\S]*?--!?>)/.exec(s.slice(lt, lt + Math.min(n - lt, 1 << 22)));
      i = m ? lt + m[0].length : n;
      continue;
    }
    if (c1 === "!" || c1 === "?" || (c1 === "/" && !isTagStart(s[lt + 2]))) {
      // A doctype, CDATA or bogus comment: up to the next `>`, dropped.
      const gt = s.indexOf(">", lt);
      i = gt < 0 ? n : gt + 1;
      continue;
    }
    const closing = c1 === "/";
    const start = closing ? lt + 2 : lt + 1;
    if (!isTagStart(s[start])) {
      // Not markup: a lone `<`.
      out += "&lt;";
      i = lt + 1;
      continue;
    }
    let j = start;
    while (j < n && !/[\s/>]/.test(s[j])) j++;
    const tag = s.slice(start, j).toLowerCase();
    const { attrs, end } = readAttrs(s, j);
    if (end < 0) break; // a tag cut off by the end of the preview
    i = end;
    if (closing) {
      if (!DROP_WITH_CONTENT.has(tag) && !DROP_TAG.has(tag) && /^[a-z][a-z0-9-]*$/.test(tag)) out += `</${tag}>`;
      continue;
    }
    if (DROP_WITH_CONTENT.has(tag)) {
      // Up to the matching end tag, whatever lies between.
      const re = new RegExp(`</${tag}[\\s/>]`, "ig");
      re.lastIndex = i;
      const m = re.exec(s);
      if (!m) break;
      const gt = s.indexOf(">", m.index);
      i = gt < 0 ? n : gt + 1;
      continue;
    }
    // HTML lets a tag name hold almost anything (`<scr<script>` names one
    // element); only plain names are written back.
    if (DROP_TAG.has(tag) || !/^[a-z][a-z0-9-]*$/.test(tag)) continue;
    let rebuilt = `<${tag}`;
    for (const a of attrs) {
      if (!/^[a-z_:][-a-z0-9_:.]*$/.test(a.name)) continue;
      if (a.name.startsWith("on") || DROP_ATTR.has(a.name)) continue;
      if (URL_ATTR.has(a.name) && !keepUrl(tag, a.name, a.value ?? "")) continue;
      rebuilt += a.value === null ? ` ${a.name}` : ` ${a.name}="${escapeAttr(a.value)}"`;
    }
    out += `${rebuilt}>`;
  }
  return out;
}

/** The frame's font: the file's own styles are gone, and the browser's
 * default serif in their place reads as a broken page. `<font face>` is a
 * presentational attribute, not a style, so the policy has nothing to
 * refuse. */
const FRAME_FONT = "system-ui, -apple-system, Segoe UI, Roboto, Noto Sans, Liberation Sans, Arial, sans-serif";

/** scikit-learn's estimator HTML shows its text form and, for when its
 * styles did not load, a plea to rerun the Jupyter cell or trust the
 * notebook; styles never load in the frame, so the plea is noise there. */
const SKLEARN_FALLBACK = /(<div class="sk-text-repr-fallback">\s*<pre>[^<]*<\/pre>)\s*<b>In a Jupyter environment[^<]*(?:<br>[^<]*)*<\/b>/g;

/** The document the preview frame shows for the HTML `text`: `inertHtml`'s
 * rewrite, in the dashboard's sans-serif. */
export function previewDocument(text: string): string {
  return `<!doctype html><font face="${FRAME_FONT}">${inertHtml(text).replace(SKLEARN_FALLBACK, "$1")}</font>`;
}

/** Block elements: each starts a line of its own. */
const BLOCK = /<\/?(?:p|div|li|tr|h[1-6]|dt|dd|hr|br|pre|blockquote|table|ul|ol|dl|section|article|header|footer|caption|figure)\b[^>]*>/gi;

/** A height (CSS px) for the frame showing `doc`, estimated from its
 * visible text: the sandboxed frame's opaque origin keeps its real height
 * from the page, and a fixed one left a two-line estimator in a tall empty
 * box. Lines are counted as the browser would break them at ~110
 * characters; images count 160 px. Between 96 and 640 px; the frame stays
 * resizable. (`doc` is `previewDocument`'s: no script, style or handler for
 * the parser to meet.) */
export function frameHeight(doc: string): number {
  const parsed = new DOMParser().parseFromString(doc, "text/html");
  // What the frame does not show: scikit-learn's diagram is `hidden` so that
  // its text form shows without styles; a closed <details> shows its summary.
  for (const el of parsed.querySelectorAll("[hidden], details:not([open]) > :not(summary)")) el.remove();
  const body = parsed.body.innerHTML;
  const images = parsed.querySelectorAll("img").length;
  const text = body.replace(BLOCK, "\n").replace(/<[^>]*>/g, "");
  let lines = 0;
  for (const line of text.split("\n")) {
    const t = line.trim();
    if (t) lines += Math.ceil(t.length / 110);
  }
  return Math.round(Math.min(640, Math.max(96, 24 + lines * 20 + images * 160)));
}
