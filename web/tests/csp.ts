// The Content-Security-Policy the dashboard is written to run under. The
// server sends it on the dashboard's HTML; until a binary does, the tests add
// it themselves (helpers.ts), so a page that needs an inline script or style,
// or loads something from another host, fails either way.

/** The policy the server sends (crates/labbook-server). */
export const DASHBOARD_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; " +
  "font-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** A policy's directives: name → sources, names lower-cased. */
export function directives(policy: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const part of policy.split(";")) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (name && !out.has(name.toLowerCase())) out.set(name.toLowerCase(), sources);
  }
  return out;
}

/** The sources a fetch directive allows, falling back to default-src as
 * browsers do. */
export function sourcesOf(policy: string, directive: string): string[] | undefined {
  const d = directives(policy);
  return d.get(directive) ?? d.get("default-src");
}

/** Response headers that describe the body or the connection; everything
 * else the server sends on its HTML (policies) is copied when the tests
 * serve web/dist in its place. */
export const BODY_HEADERS = new Set(["content-type", "content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive", "date", "etag", "last-modified"]);
