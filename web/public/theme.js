// Sets the theme before the first paint, so a dark dashboard never flashes
// light. A file rather than an inline script: the dashboard's CSP is
// `script-src 'self'`. Loaded as a classic blocking script from <head>;
// src/theme.ts takes over once the app runs.
try {
  var t = localStorage.getItem("labbook.theme");
  if (t !== "light" && t !== "dark") t = matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  document.documentElement.dataset.theme = t;
} catch (e) {}
