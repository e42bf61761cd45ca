// Markdown → sanitized HTML. Loaded on demand (its own chunk): only the run
// page and the notebook render Markdown.
//
// Notes are written by anyone who can reach the API, so their HTML is
// hostile: it must not restyle or cover the dashboard, and it must not make
// the browser fetch anything from another host (a remote image would leak
// the dashboard's URL and that the note was read).
//
// Two layers. Raw HTML in a note is shown as text, except bare tags with no
// attributes (`<kbd>`, `<details>`…): parsing HTML at all, even in
// DOMPurify's inert document, makes Chromium check each style attribute and
// event handler against the page's CSP and report a violation, so hostile
// markup must never reach a parser. What marked itself emits has no such
// attributes; DOMPurify then applies an allow-list of tags and attributes to
// it and rewrites links and images (below).
import { marked } from "marked";
import DOMPurify from "dompurify";

// Tags a note may write by hand, without attributes.
const BARE_TAGS = new Set([
  "b", "i", "u", "s", "em", "strong", "del", "ins", "mark", "small", "sub", "sup", "kbd", "samp", "code", "pre",
  "br", "hr", "p", "div", "span", "blockquote", "details", "summary", "dl", "dt", "dd", "ul", "ol", "li",
  "table", "thead", "tbody", "tfoot", "tr", "th", "td", "h1", "h2", "h3", "h4", "h5", "h6", "q",
]);
const TAG = /^<\/?([a-zA-Z][a-zA-Z0-9]*)\s*\/?>/;

/** Raw HTML with every `<` escaped unless it opens a bare allowed tag: the
 * HTML parser starts markup only at `<`, so no other element and no
 * attribute can come out of it. */
export function escapeRawHtml(html: string): string {
  let out = "";
  let i = 0;
  for (let j = html.indexOf("<"); j >= 0; j = html.indexOf("<", i)) {
    out += html.slice(i, j);
    const m = TAG.exec(html.slice(j, j + 40));
    if (m && BARE_TAGS.has(m[1].toLowerCase())) {
      out += m[0].toLowerCase();
      i = j + m[0].length;
    } else {
      out += "&lt;";
      i = j + 1;
    }
  }
  return out + html.slice(i);
}

marked.use({ gfm: true, breaks: true, renderer: { html: ({ text }) => escapeRawHtml(text) } });

// What marked emits for GFM, plus the bare tags above. Nothing here loads a
// resource except <img>, which the hook below limits to this origin and
// data: URLs.
const ALLOWED_TAGS = [
  "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt", "em",
  "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "input", "ins", "kbd", "li", "mark", "ol", "p",
  "pre", "q", "s", "samp", "small", "span", "strong", "sub", "summary", "sup", "table", "tbody",
  "td", "tfoot", "th", "thead", "tr", "u", "ul",
];
// No `style` (a note could cover the page), no `class` or `id` (the
// dashboard's own classes include fixed overlays; ids could clash), no
// `srcset`, `ping` or event handlers. `align` is how marked aligns table
// cells; `type`/`checked`/`disabled` are its task-list checkboxes.
const ALLOWED_ATTR = ["href", "src", "alt", "title", "align", "start", "type", "checked", "disabled"];
// Named as well as left out of the allow-list, so widening the list later
// cannot bring them back by accident.
const FORBID_TAGS = ["style", "link", "meta", "base", "iframe", "frame", "object", "embed", "video", "audio", "source", "track", "picture", "svg", "math", "form", "button", "textarea", "select"];
const FORBID_ATTR = ["style", "class", "id", "srcset", "ping", "background", "poster", "formaction", "action"];

function sameOrigin(url: URL): boolean {
  return url.origin === location.origin;
}

function parse(href: string): URL | null {
  try {
    return new URL(href, location.href);
  } catch {
    return null;
  }
}

// After the attribute check, which would drop the `target` and `rel` set here.
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  const tag = node.nodeName;
  if (tag === "IMG") {
    // DOMPurify has already removed unsafe schemes; what is left may still
    // point at another host. Such an image is shown as a link instead.
    const src = node.getAttribute("src") ?? "";
    const url = src ? parse(src) : null;
    if (url && (url.protocol === "data:" || sameOrigin(url))) return;
    const alt = node.getAttribute("alt") ?? "";
    const web = url && (url.protocol === "http:" || url.protocol === "https:") ? url.href : null;
    const out = node.ownerDocument.createElement(web ? "a" : "span");
    if (web) {
      out.setAttribute("href", web);
      out.setAttribute("target", "_blank");
      out.setAttribute("rel", "noopener noreferrer");
    }
    out.setAttribute("title", "Remote image, not loaded");
    out.textContent = `[image${alt ? `: ${alt}` : ""}]${web ? ` ${web}` : ""}`;
    node.replaceWith(out);
  } else if (tag === "A") {
    const href = node.getAttribute("href");
    // DOMPurify dropped a javascript: or data: target; what is left would
    // look like a link and go nowhere.
    if (!href) return node.replaceWith(...Array.from(node.childNodes));
    const url = parse(href);
    // Other sites open in a new tab, so the dashboard's router leaves them
    // alone, and learn neither the dashboard's URL nor a handle on it.
    if (!url || !sameOrigin(url)) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  } else if (tag === "INPUT") {
    // Only marked's read-only task-list checkboxes.
    if (node.getAttribute("type") !== "checkbox") node.remove();
    else node.setAttribute("disabled", "");
  }
});

export function renderMarkdown(text: string): string {
  const html = marked.parse(text, { async: false });
  return DOMPurify.sanitize(html, {
    ALLOWED_TAGS,
    ALLOWED_ATTR,
    FORBID_TAGS,
    FORBID_ATTR,
    ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false,
  });
}
