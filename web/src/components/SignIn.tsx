// The sign-in page of a `labbook serve --auth`: a user name and password
// for a session cookie (docs/API.md). Nothing else of the dashboard is
// mounted while it shows, so nothing else asks the server anything.
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import type { Session } from "../api";
import { api, ApiError } from "../api";
import { plural } from "../format";
import { Logo } from "./common";

/** What to tell the user when the server refuses to sign them in. */
export function signInError(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 401) return "The user name or password is wrong.";
    if (e.status === 429) {
      if (e.retryAfter === undefined) return "Too many wrong passwords: try again later.";
      return `Too many wrong passwords: try again in ${plural(Math.max(1, Math.ceil(e.retryAfter / 60)), "minute")}.`;
    }
    if (e.status === 0) return "Cannot reach the labbook server. Is it still running?";
  }
  return e instanceof Error ? e.message : String(e);
}

export function SignIn({ onSignedIn, corner }: { onSignedIn: (s: Session) => void; corner?: ComponentChildren }) {
  const [user, setUser] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<{ text: string; wrong: boolean } | null>(null);
  const [capsLock, setCapsLock] = useState(false);
  const userRef = useRef<HTMLInputElement>(null);
  const passwordRef = useRef<HTMLInputElement>(null);

  useEffect(() => {
    document.title = "Sign in · labbook";
    userRef.current?.focus();
  }, []);

  const submit = (e: Event) => {
    e.preventDefault();
    if (busy) return;
    const name = user.trim();
    if (!name || !password) {
      setError({ text: name ? "Enter your password." : "Enter your user name.", wrong: false });
      (name ? passwordRef : userRef).current?.focus();
      return;
    }
    setBusy(true);
    setError(null);
    api.signIn(name, password).then(
      (s) => {
        setBusy(false);
        onSignedIn(s);
      },
      (err: unknown) => {
        setBusy(false);
        const wrong = err instanceof ApiError && err.status === 401;
        setError({ text: signInError(err), wrong });
        if (wrong) {
          setPassword("");
          passwordRef.current?.focus();
        }
      },
    );
  };

  const onKey = (e: KeyboardEvent) => setCapsLock(e.getModifierState?.("CapsLock") ?? false);

  return (
    <div class="signin-page">
      {corner && <div class="signin-corner">{corner}</div>}
      <div class="signin">
        <div class="signin-brand">
          <Logo size={28} />
          labbook
        </div>
        <form class="signin-card" onSubmit={submit} noValidate data-testid="sign-in">
          <div class="signin-body">
            <h1>Sign in to labbook</h1>
            <p class="signin-sub">
              Use your account on <span class="mono">{location.host}</span>.
            </p>
            <label class="signin-field">
              <span class="signin-label">User name</span>
              <input
                ref={userRef}
                class="input"
                name="user"
                type="text"
                autocomplete="username"
                autocapitalize="none"
                spellcheck={false}
                value={user}
                aria-invalid={error?.wrong ? true : undefined}
                onInput={(e) => setUser(e.currentTarget.value)}
              />
            </label>
            <label class="signin-field">
              <span class="signin-label">Password</span>
              <input
                ref={passwordRef}
                class="input"
                name="password"
                type="password"
                autocomplete="current-password"
                value={password}
                aria-invalid={error?.wrong ? true : undefined}
                aria-describedby={error ? "signin-error" : undefined}
                onInput={(e) => setPassword(e.currentTarget.value)}
                onKeyUp={onKey}
                onKeyDown={onKey}
              />
              {capsLock && <span class="signin-caps">Caps Lock is on.</span>}
            </label>
            {error && (
              <div class="signin-error" id="signin-error" role="alert" data-testid="sign-in-error">
                <svg width="14" height="14" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2.2" stroke-linecap="round" aria-hidden="true">
                  <circle cx="12" cy="12" r="10" />
                  <path d="M12 7v6M12 17h.01" />
                </svg>
                <span>{error.text}</span>
              </div>
            )}
            <button class="btn btn-primary signin-submit" type="submit" disabled={busy} aria-busy={busy}>
              {busy && <span class="spinner sm" aria-hidden="true" />}
              Sign in
            </button>
          </div>
          <p class="signin-hint">
            No account? An admin adds one with <code>labbook user add NAME</code>.
          </p>
        </form>
      </div>
    </div>
  );
}
