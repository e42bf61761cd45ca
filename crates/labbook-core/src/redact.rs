//! What counts as a secret, and how it is taken out of what a run records.
//!
//! The one set of rules for every path into the store: the command line,
//! environment variables, git remote and diff recorded by capture, and
//! config values however they arrive (SDK, CLI, write API). Pure functions
//! over strings, so every rule is tested here with tables of cases.
//!
//! The rules lean towards hiding: a hidden hyperparameter is an annoyance
//! the user sees (`***`), a stored token is a leak nobody sees. Where a
//! common ML name would be hidden for nothing (`max_tokens`, `pad_token`,
//! `sort_key`, `--author`, `-p PORT`), the rule is narrowed by name, and
//! the exceptions are listed below.

/// What a hidden value is replaced with.
pub const MASK: &str = "***";

// ---------------------------------------------------------------- names

/// Parts that make any name secret wherever they appear inside one of its
/// words: nobody calls a hyperparameter `password_len` by accident.
const STRONG_PARTS: &[&str] = &[
    "secret",
    "password",
    "passwd",
    "passphrase",
    "credential",
    "apikey",
    "privatekey",
    "accesskey",
    "jwt",
    "cookie",
    "bearer",
];

/// Words before a final `token` that make it a vocabulary token or a
/// pagination cursor rather than a credential (`pad_token`, `max_token`,
/// `next_page_token`).
const NOT_SECRET_TOKENS: &[&str] = &[
    "pad",
    "eos",
    "bos",
    "unk",
    "sep",
    "cls",
    "mask",
    "special",
    "start",
    "end",
    "stop",
    "sos",
    "eot",
    "eod",
    "max",
    "min",
    "num",
    "n",
    "new",
    "image",
    "img",
    "audio",
    "video",
    "vision",
    "think",
    "tool",
    "placeholder",
    "decoder",
    "encoder",
    "page",
    "next",
    "prev",
    "continuation",
    "pagination",
    "sync",
    "cancel",
    "cancellation",
];

/// Words before a final `key` that make it a data or model key rather than
/// a credential (`sort_key`, `text_key`, `rng_key`, `public_key`).
const NOT_SECRET_KEYS: &[&str] = &[
    "sort",
    "metric",
    "monitor",
    "text",
    "label",
    "labels",
    "input",
    "inputs",
    "output",
    "outputs",
    "target",
    "tgt",
    "image",
    "img",
    "audio",
    "video",
    "primary",
    "foreign",
    "dict",
    "map",
    "group",
    "partition",
    "shard",
    "cache",
    "lookup",
    "join",
    "hash",
    "dataset",
    "data",
    "column",
    "col",
    "row",
    "field",
    "feature",
    "features",
    "prompt",
    "response",
    "answer",
    "question",
    "context",
    "instruction",
    "chosen",
    "rejected",
    "caption",
    "message",
    "messages",
    "document",
    "doc",
    "passage",
    "name",
    "id",
    "index",
    "query",
    "value",
    "batch",
    "mask",
    "class",
    "split",
    "score",
    "reward",
    "config",
    "state",
    "model",
    "result",
    "attention",
    "attn",
    "rng",
    "prng",
    "random",
    "seed",
    "dedup",
    "unique",
    "public",
    "pub",
    "object",
    "s3",
    "file",
    "path",
    "source",
    "src",
    "dst",
    "log",
    "sequence",
    "seq",
    "frame",
    "order",
    "routing",
    "checkpoint",
    "ckpt",
    "artifact",
    "param",
    "tag",
    "tags",
    "record",
    "entry",
    "embedding",
    "vector",
    "hot",
    "sorting",
    "grouping",
];

/// Words before a final `pass` that make it a pass over data, not a
/// password (`forward_pass`, `num_pass`).
const NOT_SECRET_PASSES: &[&str] = &[
    "first",
    "second",
    "third",
    "last",
    "single",
    "one",
    "two",
    "multi",
    "double",
    "forward",
    "backward",
    "fwd",
    "bwd",
    "num",
    "n",
    "each",
    "every",
    "per",
    "full",
    "final",
    "extra",
    "render",
    "shadow",
    "compile",
    "eval",
    "train",
    "inference",
];

/// Whether a key, option or parameter name looks like it holds a secret:
/// config keys, `--long-options`, `NAME=VALUE` names, URL query parameters.
///
/// The name is split into lower-case words at every non-alphanumeric
/// character and at camelCase boundaries (`X-Amz-Signature`, `apiKey`,
/// `db.password`, `HF_TOKEN`). It is secret when
/// - any word contains secret, password, passwd, passphrase, credential,
///   apikey, privatekey, accesskey, jwt, cookie or bearer, or is `creds`;
/// - its last word ends in `token`, unless it (or the word before a bare
///   `token`) names a vocabulary token, a count or a cursor: `pad_token`,
///   `max_token`, `next_page_token` stay;
/// - its last word is `key` and the word before is not a data or model
///   word: `api_key`, `x-api-key`, `key` are secret, `sort_key`,
///   `text_key`, `rng_key`, `public_key` are not;
/// - its last word is `auth`, `authorization`, `oauth` or `signature`, or
///   the whole name is `sig`;
/// - its last word is `pass` or `pwd` (`DB_PASS`), unless it is a pass over
///   data (`forward_pass`, `num_pass`).
///
/// Only whole words count, so `author`, `keyword`, `monkey`, `tokenizer`,
/// `max_tokens`, `bypass` and `passes` are not secret, and a word that is
/// not last does not count either (`token_id`, `key_dim`, `auth_type`,
/// `api_key_file`): those hold ids, sizes, kinds and paths.
pub fn secret_name(name: &str) -> bool {
    let words = words(name);
    let Some(last) = words.last() else {
        return false;
    };
    if words
        .iter()
        .any(|w| w == "creds" || STRONG_PARTS.iter().any(|part| w.contains(part)))
    {
        return true;
    }
    let prev = words.len().checked_sub(2).map(|i| words[i].as_str());
    if let Some(stem) = last.strip_suffix("token") {
        let qualifier = if stem.is_empty() { prev } else { Some(stem) };
        return !qualifier.is_some_and(|q| NOT_SECRET_TOKENS.contains(&q));
    }
    match last.as_str() {
        "key" => !prev.is_some_and(|q| NOT_SECRET_KEYS.contains(&q)),
        "pass" | "pwd" => !prev.is_some_and(|q| NOT_SECRET_PASSES.contains(&q)),
        "auth" | "authorization" | "oauth" | "signature" => true,
        "sig" => words.len() == 1,
        _ => false,
    }
}

/// Whether a secret-like name holds a password, which (unlike a token or an
/// API key) may be a number: a word containing secret, password, passwd or
/// passphrase, or a last word `pass` or `pwd` ([`secret_name`]'s rules).
pub fn password_name(name: &str) -> bool {
    if !secret_name(name) {
        return false;
    }
    let words = words(name);
    words.iter().any(|w| {
        ["secret", "password", "passwd", "passphrase"]
            .iter()
            .any(|part| w.contains(part))
    }) || words.last().is_some_and(|w| w == "pass" || w == "pwd")
}

/// Upper-case parts that refuse an environment variable wherever they
/// appear in its name. Environment variables are recorded from an
/// allow-list, so refusing too many costs little: this is wider than
/// [`secret_name`] (`SLURM_JOB_KEY_ID`, `SGE_SESSION_ID` are refused).
const ENV_DENIED_PARTS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "KEY",
    "AUTH",
    "COOKIE",
    "SESSION",
    "JWT",
    "PRIVATE",
    "SIGNATURE",
    "CERT",
];

/// Upper-case words (between `_`, `-` or `.`) that refuse an environment
/// variable: as parts they would also catch `BYPASS`, `COMPASS`, `PATH`.
const ENV_DENIED_WORDS: &[&str] = &[
    "PASS", "PW", "PWD", "PAT", "CRED", "CREDS", "OTP", "SIG", "SALT",
];

/// Whether an environment variable's name may hold a secret: [`secret_name`],
/// or (in any case) any of TOKEN, SECRET, PASSWORD, PASSWD, PASSPHRASE,
/// CREDENTIAL, KEY, AUTH, COOKIE, SESSION, JWT, PRIVATE, SIGNATURE, CERT
/// anywhere in it, or a word PASS, PW, PWD, PAT, CRED, CREDS, OTP, SIG or
/// SALT (`DB_PASS`, `GH_PAT`, but not `BYPASS`).
pub fn secret_env_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    secret_name(name)
        || ENV_DENIED_PARTS.iter().any(|part| upper.contains(part))
        || upper
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| ENV_DENIED_WORDS.contains(&word))
}

/// Lower-case words of a name: split at every non-alphanumeric character,
/// before an upper-case letter that follows a lower-case letter or a digit
/// (`apiKey`), and before the last capital of an acronym that starts a word
/// (`HTTPAuth` → `http`, `auth`).
fn words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut out = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            continue;
        }
        if c.is_uppercase() && !word.is_empty() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_numeric() || (prev.is_uppercase() && next_lower) {
                out.push(std::mem::take(&mut word));
            }
        }
        word.extend(c.to_lowercase());
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

// ---------------------------------------------------------------- values

/// One replacement in a string: bytes `start..end` become `with`.
#[derive(Debug, Clone, Copy)]
struct Edit {
    start: usize,
    end: usize,
    with: &'static str,
}

/// Removes credentials from every URL (`scheme://…`) in `s`, wherever it
/// sits in a longer string (`DATABASE=postgres://u:p@h/db`).
///
/// - For http, https, ftp, ftps, ws and wss (also as `git+https`) the whole
///   user-info goes: a token is often sent as the user name
///   (`https://ghp_x@github.com`, `https://oauth2:T@gitlab.com`), and a git
///   remote keeps one canonical form.
/// - For other schemes (databases, ssh, redis, amqp, s3…) the user name is
///   kept and the password becomes `***`: `postgres://u:***@h/db`.
/// - Query and fragment parameters whose name is [`secret_name`] keep their
///   name and get the value `***`: `?private_token=***`, `?X-Amz-Signature=***`,
///   `#access_token=***`.
///
/// Everything else, including URLs without credentials, is kept exactly.
pub fn strip_url_credentials(s: &str) -> String {
    if !s.contains("://") {
        return s.to_owned();
    }
    let mut edits = Vec::new();
    url_edits(s, &mut edits);
    apply(s, edits)
}

/// [`strip_url_credentials`], plus secrets that sit in a string outside
/// URLs: the value after a secret-like name and `=` or `:` (`HF_TOKEN=abc`,
/// `--api-key=abc`, `{"api_key": "abc"}`, `Authorization: Bearer abc`,
/// `AccountKey=abc;`), the token after `Bearer`, and the password of a
/// scheme-less `user:password@host`. For any captured string value: config
/// strings, allowed environment variables, command-line arguments.
pub fn redact_value(s: &str) -> String {
    // Every rule below needs one of these; most values have none.
    let maybe = s.bytes().any(|b| matches!(b, b'=' | b':' | b'@'))
        || s.to_ascii_lowercase().contains("bearer");
    if !maybe {
        return s.to_owned();
    }
    let mut edits = Vec::new();
    let urls = url_edits(s, &mut edits);
    assignment_edits(s, &urls, &mut edits);
    bearer_edits(s, &mut edits);
    bare_userinfo_edits(s, &mut edits);
    apply(s, edits)
}

/// Applies edits; where two overlap, the union of their ranges is hidden,
/// so an overlap can never let part of a secret through.
fn apply(s: &str, mut edits: Vec<Edit>) -> String {
    if edits.is_empty() {
        return s.to_owned();
    }
    edits.sort_by_key(|e| (e.start, std::cmp::Reverse(e.end)));
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    for e in edits {
        if e.end <= pos {
            continue;
        }
        if e.start >= pos {
            out.push_str(&s[pos..e.start]);
            out.push_str(e.with);
        }
        pos = e.end;
    }
    out.push_str(&s[pos..]);
    out
}

/// Bytes that end a URL, a token or an unquoted value.
fn is_space_or_quote(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b'`' | b'<' | b'>')
}

/// Adds the edits of every URL in `s` and returns the URLs' byte ranges.
fn url_edits(s: &str, edits: &mut Vec<Edit>) -> Vec<(usize, usize)> {
    let bytes = s.as_bytes();
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(found) = s[from..].find("://") {
        let sep = from + found;
        from = sep + 3;
        let Some(scheme_start) = scheme_start(bytes, sep) else {
            continue;
        };
        let scheme = s[scheme_start..sep].to_ascii_lowercase();
        let start = sep + 3;
        let end = (start..bytes.len())
            .find(|&i| is_space_or_quote(bytes[i]))
            .unwrap_or(bytes.len());
        let delimiter_from = |from: usize| {
            (from..end)
                .find(|&i| matches!(bytes[i], b'/' | b'?' | b'#'))
                .unwrap_or(end)
        };
        let mut authority_end = delimiter_from(start);
        let mut at = s[start..authority_end].rfind('@').map(|at| start + at);
        let web = matches!(
            scheme.rsplit('+').next(),
            Some("http" | "https" | "ftp" | "ftps" | "ws" | "wss")
        );
        if at.is_none()
            && let Some(first) = s[start..end].find('@').map(|a| start + a)
            && password_cut_short(&s[start..authority_end], &s[authority_end..first], web)
        {
            // `u:pa/ss@h`: a password with an unescaped `/`, `?` or `#` ends
            // the authority early; it really ends at the host after the `@`.
            authority_end = delimiter_from(first);
            at = s[start..authority_end].rfind('@').map(|a| start + a);
        }
        if let Some(at) = at {
            if web {
                edits.push(Edit {
                    start,
                    end: at + 1,
                    with: "",
                });
            } else if let Some(colon) = s[start..at].find(':') {
                let password = start + colon + 1;
                if password < at {
                    edits.push(Edit {
                        start: password,
                        end: at,
                        with: MASK,
                    });
                }
            }
        }
        if let Some(q) = s[authority_end..end].find(['?', '#']) {
            param_edits(s, authority_end + q + 1, end, edits);
        }
        spans.push((scheme_start, end));
    }
    spans
}

/// Whether an authority without `@` is `user:` plus the start of a password
/// that went on (`between`) up to an `@`, rather than `host:port` (or an IPv6
/// literal) and a path with an `@` in it. Web paths have `@`s
/// (`h:8080/@user`), so after a web URL's digits only an `@` inside the first
/// path segment counts; database, ssh or broker URLs have none.
fn password_cut_short(authority: &str, between: &str, web: bool) -> bool {
    if authority.starts_with('[') {
        return false;
    }
    let Some((_, after_colon)) = authority.split_once(':') else {
        return false;
    };
    if !web || after_colon.is_empty() || !after_colon.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    let segment = between.get(1..).unwrap_or("");
    !segment.is_empty() && !segment.contains(['/', '?', '#'])
}

/// Where the scheme ending at `sep` starts: RFC 3986 letters, digits, `+`,
/// `-` and `.`, starting with a letter.
fn scheme_start(bytes: &[u8], sep: usize) -> Option<usize> {
    let mut start = sep;
    while start > 0
        && matches!(bytes[start - 1], b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'+' | b'-' | b'.')
    {
        start -= 1;
    }
    (start..sep).find(|&i| bytes[i].is_ascii_alphabetic())
}

/// `name=value` pairs of a query string or fragment between `start` and
/// `end`.
fn param_edits(s: &str, start: usize, end: usize, edits: &mut Vec<Edit>) {
    let bytes = s.as_bytes();
    let mut piece = start;
    for i in start..=end {
        if i < end && !matches!(bytes[i], b'&' | b';' | b'?' | b'#') {
            continue;
        }
        if let Some(eq) = s[piece..i].find('=') {
            let value = piece + eq + 1;
            if value < i && secret_name(&percent_decode(&s[piece..piece + eq])) {
                edits.push(Edit {
                    start: value,
                    end: i,
                    with: MASK,
                });
            }
        }
        piece = i + 1;
    }
}

/// `%XX` escapes decoded, so that `api%5Fkey` is seen as `api_key`.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            )
        {
            // Two hex digits make at most 255.
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// HTTP authorization schemes: after `Authorization:` the scheme stays
/// readable and the credentials after it are hidden.
const AUTH_SCHEMES: &[&str] = &["bearer", "basic", "token", "digest", "negotiate", "ntlm"];

/// `NAME=VALUE`, `NAME: VALUE` and `"NAME": "VALUE"` where NAME is
/// [`secret_name`], outside the URLs at `urls` (whose user-info and query
/// parameters have rules of their own).
fn assignment_edits(s: &str, urls: &[(usize, usize)], edits: &mut Vec<Edit>) {
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b != b'=' && b != b':' {
            continue;
        }
        if urls.iter().any(|&(start, end)| (start..end).contains(&i)) {
            continue;
        }
        if b == b':' && bytes[i + 1..].starts_with(b"//") {
            continue;
        }
        // `==`, `!=`, `<=`, `>=` compare rather than assign.
        if b == b'='
            && (bytes.get(i + 1) == Some(&b'=')
                || (i > 0 && matches!(bytes[i - 1], b'=' | b'!' | b'<' | b'>')))
        {
            continue;
        }
        let mut name_end = i;
        while name_end > 0 && matches!(bytes[name_end - 1], b' ' | b'\t') {
            name_end -= 1;
        }
        if name_end > 0 && matches!(bytes[name_end - 1], b'"' | b'\'') {
            name_end -= 1;
        }
        let mut name_start = name_end;
        while name_start > 0 && is_name_byte(bytes[name_start - 1]) {
            name_start -= 1;
        }
        if name_start == name_end || !secret_name(&s[name_start..name_end]) {
            continue;
        }
        let mut start = i + 1;
        while start < bytes.len() && matches!(bytes[start], b' ' | b'\t') {
            start += 1;
        }
        let Some(&first) = bytes.get(start) else {
            continue;
        };
        if first == b'"' || first == b'\'' {
            let end = closing_quote(bytes, start + 1, first);
            if end > start + 1 {
                edits.push(Edit {
                    start: start + 1,
                    end,
                    with: MASK,
                });
            }
            continue;
        }
        let delimiter = |c: u8| {
            is_space_or_quote(c)
                || matches!(c, b';' | b'&')
                || (b == b':' && matches!(c, b',' | b'}' | b']'))
        };
        let mut end = start;
        while end < bytes.len() && !delimiter(bytes[end]) {
            end += 1;
        }
        if end == start {
            continue;
        }
        let (mut start, mut end) = (start, end);
        // `Authorization: Bearer abc`: the scheme is no secret, what follows is.
        if AUTH_SCHEMES.contains(&s[start..end].to_ascii_lowercase().as_str()) {
            let mut next = end;
            while next < bytes.len() && matches!(bytes[next], b' ' | b'\t') {
                next += 1;
            }
            let mut next_end = next;
            while next_end < bytes.len() && !delimiter(bytes[next_end]) {
                next_end += 1;
            }
            if next < next_end {
                (start, end) = (next, next_end);
            }
        }
        edits.push(Edit {
            start,
            end,
            with: MASK,
        });
    }
}

/// The index of the quote `q` that closes a string whose contents start at
/// `from` (a backslash escapes the next byte), or the end of `bytes`.
fn closing_quote(bytes: &[u8], from: usize, q: u8) -> usize {
    let mut i = from;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if bytes[i] == q {
            return i;
        }
        i += 1;
    }
    bytes.len()
}

/// The token after `Bearer ` anywhere (a header pasted into an argument,
/// without its `Authorization:`).
fn bearer_edits(s: &str, edits: &mut Vec<Edit>) {
    let bytes = s.as_bytes();
    let lower = s.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find("bearer") {
        let at = from + found;
        from = at + 6;
        if at > 0 && bytes[at - 1].is_ascii_alphanumeric() {
            continue;
        }
        let mut start = at + 6;
        if !bytes.get(start).is_some_and(|&b| b == b' ' || b == b'\t') {
            continue;
        }
        while start < bytes.len() && matches!(bytes[start], b' ' | b'\t') {
            start += 1;
        }
        let mut end = start;
        while end < bytes.len()
            && !(is_space_or_quote(bytes[end]) || matches!(bytes[end], b',' | b';'))
        {
            end += 1;
        }
        // Prose has bearers too ("the bearer of news"); a token has a digit
        // or punctuation in it, or is long.
        let token = &bytes[start..end];
        let tokenlike = token.len() >= 20 || token.iter().any(|b| !b.is_ascii_alphabetic());
        if end > start && tokenlike {
            edits.push(Edit {
                start,
                end,
                with: MASK,
            });
        }
    }
}

/// `user:password@host` without a scheme (`--proxy u:p@h:3128`): the
/// password is hidden. A docker image digest (`name:tag@sha256:…`) and
/// `user@host:path` carry no password and are kept.
fn bare_userinfo_edits(s: &str, edits: &mut Vec<Edit>) {
    let bytes = s.as_bytes();
    let mut token_start = 0;
    for i in 0..=bytes.len() {
        if i < bytes.len() && !is_space_or_quote(bytes[i]) {
            continue;
        }
        let token = &s[token_start..i];
        if let Some(at) = token.rfind('@')
            && !token.contains("://")
        {
            let info_start = token[..at].rfind(['=', ',', ';', '(']).map_or(0, |p| p + 1);
            let info = &token[info_start..at];
            let host = &token[at + 1..];
            let digest = host.starts_with("sha")
                && host
                    .split_once(':')
                    .is_some_and(|(algo, _)| algo[3..].bytes().all(|b| b.is_ascii_digit()));
            let hostlike = host
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'[');
            if let Some(colon) = info.find(':')
                && !info[..colon].contains('/')
                && colon + 1 < info.len()
                && hostlike
                && !digest
            {
                edits.push(Edit {
                    start: token_start + info_start + colon + 1,
                    end: token_start + at,
                    with: MASK,
                });
            }
        }
        token_start = i + 1;
    }
}

// ---------------------------------------------------------------- argv

/// How a known program takes a password in a short option.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Short {
    /// Only attached (`mysql -pSECRET`): after a bare `-p` mysql prompts,
    /// and the next argument is the database.
    Attached(u8),
    /// Attached or as the next argument (`sshpass -p SECRET`).
    Either(u8),
    /// `curl -u user:password`, `--user`, `-U`/`--proxy-user`: the part
    /// after the first colon.
    UserColon,
    /// The first positional argument (`wandb login KEY`).
    Positional,
}

/// A program whose options hide a password without naming it.
struct Program {
    names: &'static [&'static str],
    /// The rule applies only after this subcommand (`docker login -p`:
    /// `docker run -p 8080:80` publishes a port).
    after: Option<&'static str>,
    rule: Short,
}

const PROGRAMS: &[Program] = &[
    Program {
        names: &[
            "mysql",
            "mysqldump",
            "mysqladmin",
            "mysqlimport",
            "mysqlshow",
            "mysqlcheck",
            "mysqlpump",
            "mysqlslap",
            "mariadb",
            "mariadb-dump",
            "mariadb-admin",
            "mariadb-import",
            "mariadb-show",
            "mariadb-check",
            "7z",
            "7za",
            "7zr",
        ],
        after: None,
        rule: Short::Attached(b'p'),
    },
    Program {
        names: &[
            "sshpass",
            "mongo",
            "mongosh",
            "mongodump",
            "mongorestore",
            "mongoexport",
            "mongoimport",
            "mongostat",
            "mongotop",
            "mongofiles",
        ],
        after: None,
        rule: Short::Either(b'p'),
    },
    Program {
        names: &["redis-cli", "valkey-cli", "keydb-cli"],
        after: None,
        rule: Short::Either(b'a'),
    },
    Program {
        names: &["zip", "unzip", "sqlcmd", "bcp"],
        after: None,
        rule: Short::Either(b'P'),
    },
    Program {
        names: &[
            "ldapsearch",
            "ldapadd",
            "ldapmodify",
            "ldapdelete",
            "ldapwhoami",
            "ldappasswd",
            "ldapcompare",
            "ldapmodrdn",
        ],
        after: None,
        rule: Short::Either(b'w'),
    },
    Program {
        names: &["curl"],
        after: None,
        rule: Short::UserColon,
    },
    Program {
        names: &[
            "docker", "podman", "nerdctl", "buildah", "skopeo", "helm", "oras", "crane", "az",
        ],
        after: Some("login"),
        rule: Short::Either(b'p'),
    },
    Program {
        names: &["wandb"],
        after: Some("login"),
        rule: Short::Positional,
    },
];

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum Pending {
    #[default]
    Nothing,
    /// The next argument is the value of a secret option.
    Mask,
    /// The next argument is `user:password`.
    MaskAfterColon,
}

/// What has been seen so far in one command line.
#[derive(Default)]
struct ArgvState {
    pending: Pending,
    program: Option<&'static Program>,
    /// The program's subcommand, when it needs one, has been seen.
    armed: bool,
}

impl ArgvState {
    /// What `arg` becomes, or `None` to keep it (values inside it are still
    /// redacted by [`redact_value`] afterwards).
    fn step(&mut self, arg: &str) -> Option<String> {
        match std::mem::take(&mut self.pending) {
            // A secret-named option followed by another long option was a
            // flag (`--use-auth-token --model x`).
            Pending::Mask if !(arg.starts_with("--") && arg.len() > 2) => {
                return Some(MASK.to_owned());
            }
            Pending::MaskAfterColon => return mask_after_colon(arg),
            _ => {}
        }
        if matches!(arg, ";" | "&&" | "||" | "|" | "&") {
            self.program = None;
            return None;
        }
        // Before the generic rule, which would take `-psecret` for a Go-style
        // option and hide the argument after it instead.
        if let Some(program) = self.program
            && self.armed
        {
            let pending = self.pending;
            if let Some(out) = self.program_rule(program.rule, arg) {
                return Some(out);
            }
            if self.pending != pending {
                return None;
            }
        }
        if let Some(name) = flag_name(arg)
            && secret_name(name)
            && !name.starts_with("no-")
            && !name.starts_with("no_")
        {
            self.pending = Pending::Mask;
            return None;
        }
        if !arg.starts_with('-') {
            self.see_word(arg);
        }
        if arg.ends_with(';') {
            self.program = None;
        }
        None
    }

    fn program_rule(&mut self, rule: Short, arg: &str) -> Option<String> {
        let bytes = arg.as_bytes();
        let short = |c: u8| bytes.len() >= 2 && bytes[0] == b'-' && bytes[1] == c;
        match rule {
            Short::Attached(c) if short(c) && bytes.len() > 2 => Some(masked_short(c)),
            Short::Either(c) if short(c) => {
                if bytes.len() > 2 {
                    Some(masked_short(c))
                } else {
                    self.pending = Pending::Mask;
                    None
                }
            }
            Short::UserColon => {
                for option in ["--user", "--proxy-user", "-u", "-U"] {
                    let Some(rest) = arg.strip_prefix(option) else {
                        continue;
                    };
                    if rest.is_empty() {
                        self.pending = Pending::MaskAfterColon;
                        return None;
                    }
                    let (joiner, value) = match rest.strip_prefix('=') {
                        Some(v) if option.starts_with("--") => ("=", v),
                        _ if option.starts_with("--") => continue,
                        _ => ("", rest),
                    };
                    return mask_after_colon(value).map(|v| format!("{option}{joiner}{v}"));
                }
                None
            }
            Short::Positional if !arg.starts_with('-') => {
                // Only the first positional after the subcommand.
                self.program = None;
                Some(MASK.to_owned())
            }
            _ => None,
        }
    }

    /// A word that may name a program or its subcommand.
    fn see_word(&mut self, arg: &str) {
        let base = arg.rsplit(['/', '\\']).next().unwrap_or(arg);
        let base = base.strip_suffix(".exe").unwrap_or(base);
        if let Some(program) = PROGRAMS.iter().find(|p| p.names.contains(&base)) {
            self.program = Some(program);
            self.armed = program.after.is_none();
        } else if let Some(program) = self.program
            && program.after == Some(arg)
        {
            self.armed = true;
        }
    }
}

fn masked_short(c: u8) -> String {
    format!("-{}{MASK}", c as char)
}

fn mask_after_colon(value: &str) -> Option<String> {
    let (user, password) = value.split_once(':')?;
    (!password.is_empty()).then(|| format!("{user}:{MASK}"))
}

/// The name of an option that takes its value as the next argument:
/// `--name`, or Go-style `-name` (lower case, at least two letters). None
/// for `--name=value`, short clusters like `-p`, numbers and words.
fn flag_name(arg: &str) -> Option<&str> {
    if arg.contains('=') {
        return None;
    }
    if let Some(name) = arg.strip_prefix("--") {
        return (!name.is_empty()).then_some(name);
    }
    let name = arg.strip_prefix('-')?;
    let go_style = name.len() >= 2
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'));
    go_style.then_some(name)
}

/// Redacts a command line before it is stored.
///
/// - The value of an option whose name is [`secret_name`] becomes `***`:
///   `--api-key=X`, `--api-key X`, `--token X`, `--password X`, `--auth X`,
///   `-token X` (Go style), `--hf_token X`. `--no-token` and a secret-named
///   option followed by another `--option` are flags and change nothing.
/// - Every argument goes through [`redact_value`]: `HF_TOKEN=abc`,
///   `--config api_key=abc`, URLs with credentials, `-H 'Authorization:
///   Bearer abc'`.
/// - Short options are never secret by themselves: `-p` is a port, a
///   project (`labbook run -p NAME`) or a path in most tools. They are
///   redacted only after a program known to take a password there:
///   `mysql`/`mariadb`/`7z` `-pSECRET` (attached only), `sshpass` and the
///   `mongo` tools `-p`, `redis-cli -a`, `zip`/`unzip`/`sqlcmd -P`, the
///   `ldap*` tools `-w`, `curl -u user:password` (also `--user`, `-U`,
///   `--proxy-user`), `docker`/`podman`/`helm`/`az`… `login -p`, and
///   `wandb login KEY`.
/// - An argument with spaces in it (`sh -c "…"`, `python -c "…"`) is split
///   like a shell would and the same rules apply to its words.
pub fn redact_argv(argv: &[String]) -> Vec<String> {
    let mut state = ArgvState::default();
    argv.iter()
        .map(|arg| {
            let arg = match state.step(arg) {
                Some(replaced) => return redact_value(&replaced),
                None => arg,
            };
            if arg.bytes().any(|b| b.is_ascii_whitespace()) {
                redact_value(&redact_script(arg, 0))
            } else {
                redact_value(arg)
            }
        })
        .collect()
}

/// Quoted commands inside quoted commands (`ssh h 'sh -c "…"'`) deeper than
/// this are left to [`redact_value`] alone.
const MAX_SCRIPT_DEPTH: usize = 4;

/// [`redact_argv`]'s option rules over the shell words of one argument, and
/// of the commands quoted inside it.
fn redact_script(script: &str, depth: usize) -> String {
    let mut state = ArgvState::default();
    let mut edits = Vec::new();
    for (start, end) in shell_words(script) {
        let raw = &script[start..end];
        let word: String = raw.chars().filter(|&c| c != '\'' && c != '"').collect();
        if let Some(replaced) = state.step(&word) {
            edits.push((start, end, replaced));
            continue;
        }
        let quoted = raw.len() >= 2
            && (raw.starts_with('\'') && raw.ends_with('\'')
                || raw.starts_with('"') && raw.ends_with('"'));
        if quoted && depth < MAX_SCRIPT_DEPTH {
            let inner = &raw[1..raw.len() - 1];
            if inner.bytes().any(|b| b.is_ascii_whitespace()) {
                let redacted = redact_script(inner, depth + 1);
                if redacted != inner {
                    let quote = &raw[..1];
                    edits.push((start, end, format!("{quote}{redacted}{quote}")));
                }
            }
        }
    }
    if edits.is_empty() {
        return script.to_owned();
    }
    let mut out = String::with_capacity(script.len());
    let mut pos = 0;
    for (start, end, replaced) in edits {
        out.push_str(&script[pos..start]);
        out.push_str(&replaced);
        pos = end;
    }
    out.push_str(&script[pos..]);
    out
}

/// Byte ranges of the words of a shell command: split at unquoted
/// whitespace, quotes and backslash escapes kept inside the words.
fn shell_words(s: &str) -> Vec<(usize, usize)> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let mut quote = None;
        while i < bytes.len() {
            let c = bytes[i];
            match quote {
                Some(q) if c == q => quote = None,
                Some(b'"') if c == b'\\' => i += 1,
                Some(_) => {}
                None if c.is_ascii_whitespace() => break,
                None if c == b'\'' || c == b'"' => quote = Some(c),
                None if c == b'\\' => i += 1,
                None => {}
            }
            i += 1;
        }
        // A backslash at the very end steps one past it.
        let end = i.min(bytes.len());
        out.push((start, end));
    }
    out
}

// ---------------------------------------------------------------- files

/// Extensions of key, certificate-store and password-database files.
const SECRET_EXTENSIONS: &[&str] = &[
    "pem", "key", "p12", "pfx", "p8", "ppk", "jks", "keystore", "pkcs12", "kdbx", "tfstate",
    "tfvars", "env",
];

/// File names that hold credentials by convention.
const SECRET_NAMES: &[&str] = &[
    ".env",
    ".envrc",
    ".netrc",
    "_netrc",
    ".pgpass",
    "pgpass.conf",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    ".dockercfg",
    ".htpasswd",
    "htpasswd",
    ".boto",
    ".s3cfg",
    ".my.cnf",
    ".mylogin.cnf",
    "kubeconfig",
    ".vault-token",
    "token",
    ".token",
];

/// Committed templates of `.env` files, which hold placeholders.
const ENV_TEMPLATES: &[&str] = &[
    "example", "sample", "template", "dist", "default", "defaults", "schema", "tmpl", "tpl",
];

/// Whether a file (a path relative to a repository, `/` or `\` separated)
/// is named like it holds secrets; its contents are then never stored, only
/// its name. Case-insensitive, on the file name unless said otherwise:
/// - `.env`, `.env.*` (`.env.local`), `*.env`, `.envrc`; but not the
///   committed templates `.env.example`, `.env.sample`, `.env.template`,
///   `.env.dist`, `.env.defaults` (nor `example.env`…);
/// - keys and key stores: `*.pem`, `*.key`, `*.p12`, `*.pfx`, `*.p8`,
///   `*.ppk`, `*.jks`, `*.keystore`, `*.pkcs12`, `*.kdbx`, `id_rsa*`,
///   `id_dsa*`, `id_ecdsa*`, `id_ed25519*`; Terraform's `*.tfstate`,
///   `*.tfstate.backup` and `*.tfvars`;
/// - any name containing `secret` or `credential` (`credentials.json`,
///   `client_secret_….json`, `secrets.toml`, `secrets.py`), `accesskeys`
///   (AWS's `…_accessKeys.csv`), or starting with `service-account` /
///   `service_account` / `serviceaccount`;
/// - `.netrc`, `_netrc`, `.pgpass`, `pgpass.conf`, `.npmrc`, `.pypirc`,
///   `.git-credentials`, `.dockercfg`, `.htpasswd`, `.boto`, `.s3cfg`,
///   `.my.cnf`, `.mylogin.cnf`, `kubeconfig`, `.vault-token`, `token`,
///   `.token` (Hugging Face's token file);
/// - by path: anything under a `.ssh` or `.gnupg` directory,
///   `.docker/config.json`, `.kube/config`, `gh/hosts.yml`.
pub fn secret_file(path: &str) -> bool {
    let lower = path.to_lowercase();
    let parts: Vec<&str> = lower.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
    let Some((&name, dirs)) = parts.split_last() else {
        return false;
    };
    if dirs.iter().any(|d| matches!(*d, ".ssh" | ".gnupg")) {
        return true;
    }
    let parent = dirs.last().copied();
    let by_path = matches!(
        (parent, name),
        (Some(".docker"), "config.json") | (Some(".kube"), "config") | (Some("gh"), "hosts.yml")
    );
    if by_path || SECRET_NAMES.contains(&name) {
        return true;
    }
    if let Some(rest) = name.strip_prefix(".env.") {
        return !ENV_TEMPLATES.contains(&rest);
    }
    if let Some(stem) = name.strip_suffix(".env") {
        return !ENV_TEMPLATES.contains(&stem);
    }
    if ["id_rsa", "id_dsa", "id_ecdsa", "id_ed25519"]
        .iter()
        .any(|p| name.starts_with(p))
    {
        return true;
    }
    if ["secret", "credential", "accesskeys"]
        .iter()
        .any(|p| name.contains(p))
        || ["service-account", "service_account", "serviceaccount"]
            .iter()
            .any(|p| name.starts_with(p))
    {
        return true;
    }
    if name.ends_with(".tfstate.backup") {
        return true;
    }
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| SECRET_EXTENSIONS.contains(&ext))
}

#[cfg(test)]
mod tests;
