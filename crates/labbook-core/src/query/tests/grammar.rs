// Query-language text generated from its grammar, for the stable stand-in
// for the query fuzz target: query/tests.rs checks the parser and evaluator
// with it, and labbook-server's mlflow/filter.rs tests include this file
// (`include!`, hence no `//!` docs and only proptest and std) to run the
// queries against a real store as the fuzz target does.
//
// A query is a list of tokens: rendered as it is, it is valid; edited (a
// token dropped, doubled, swapped or replaced, junk put in, the text cut,
// nesting or a chain past the parser's bounds), it is near-valid, which is
// where parsers break. The tokens also render in an equivalent spelling
// (operator synonyms, keyword case, extra blanks) for the tests' laws.

use proptest::prelude::*;
use proptest::sample::Index;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `and or not in like ilike contains is null`: any case.
    Keyword,
    /// `= != <> == < <= > >=`.
    Op,
    Other,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub text: String,
    pub kind: Kind,
}

fn tok(text: impl Into<String>, kind: Kind) -> Token {
    Token {
        text: text.into(),
        kind,
    }
}

fn other(text: impl Into<String>) -> Token {
    tok(text, Kind::Other)
}

fn keyword(text: &str) -> Token {
    tok(text, Kind::Keyword)
}

/// A generated query: its tokens, and whether they are the grammar's own
/// (valid) or edited (maybe valid).
#[derive(Debug, Clone)]
pub struct Query {
    pub tokens: Vec<Token>,
    pub valid: bool,
    /// Text put in place of the rendering (cuts, huge inputs).
    pub raw: Option<String>,
}

impl Query {
    pub fn text(&self) -> String {
        match &self.raw {
            Some(raw) => raw.clone(),
            None => join(self.tokens.iter().map(|t| t.text.clone())),
        }
    }

    /// The same query spelled otherwise: `==` for `=`, `<>` for `!=` and
    /// back, keywords in upper case, two blanks between tokens.
    pub fn respelled(&self) -> String {
        self.tokens
            .iter()
            .map(|t| match (t.kind, t.text.as_str()) {
                (Kind::Op, "=") => "==".to_string(),
                (Kind::Op, "==") => "=".to_string(),
                (Kind::Op, "!=") => "<>".to_string(),
                (Kind::Op, "<>") => "!=".to_string(),
                (Kind::Keyword, k) => k.to_ascii_uppercase(),
                (_, text) => text.to_string(),
            })
            .collect::<Vec<_>>()
            .join("  ")
    }
}

fn join(texts: impl Iterator<Item = String>) -> String {
    texts.collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------- fields

/// Keys the test runs hold (so conditions hit as well as miss) and others.
const CONFIG_KEYS: &[&str] = &[
    "lr",
    "model.depth",
    "opt",
    "odd key",
    "flag",
    "seed",
    "none",
    "tags",
    "missing",
];
const METRIC_KEYS: &[&str] = &["val/loss", "loss", "acc", "missing"];
const ATTRS: &[&str] = &[
    "id",
    "name",
    "project",
    "group",
    "status",
    "notes",
    "tags",
    "host",
    "created",
    "ended",
    "duration",
    "exit_code",
];

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '/' | '-' | '@' | ':' | '[' | ']')
}

/// A key as a query writes it: bare, or `quoted` with `` doubled.
fn quote_key(key: &str) -> String {
    if !key.is_empty() && key.chars().all(is_ident_char) {
        key.to_string()
    } else {
        format!("`{}`", key.replace('`', "``"))
    }
}

fn key(known: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(known).prop_map(str::to_string),
        1 => "[a-z_][a-z0-9_./@:-]{0,10}",
        1 => "[ -~é日]{1,8}",
    ]
}

/// Upper, lower or mixed case: the parser ignores a name's case.
fn any_case(word: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(word.to_string()),
        1 => Just(word.to_ascii_uppercase()),
        1 => Just(
            word.chars()
                .enumerate()
                .map(|(i, c)| if i % 2 == 0 { c.to_ascii_uppercase() } else { c })
                .collect::<String>()
        ),
    ]
}

/// A field, as the tokens that name it.
pub fn field() -> BoxedStrategy<Vec<Token>> {
    let namespaced = |ns: &'static [&'static str], keys: &'static [&'static str]| {
        (prop::sample::select(ns), key(keys))
            .prop_map(|(ns, k)| vec![other(format!("{ns}.{}", quote_key(&k)))])
    };
    prop_oneof![
        3 => prop::sample::select(ATTRS).prop_flat_map(any_case).prop_map(|a| vec![other(a)]),
        3 => namespaced(&["config", "params", "CONFIG"], CONFIG_KEYS),
        3 => namespaced(&["metrics", "metric"], METRIC_KEYS),
        1 => namespaced(&["summary"], METRIC_KEYS),
        1 => namespaced(&["tags"], &["team", "mlflow.runName"]),
        1 => prop::sample::select(&["name", "digest", "context", "NAME"][..])
            .prop_map(|a| vec![other(format!("datasets.{a}"))]),
        2 => (
            prop::sample::select(&["min", "max", "last", "count"][..]).prop_flat_map(any_case),
            key(METRIC_KEYS),
        )
            .prop_map(|(agg, k)| vec![
                other(agg),
                other("("),
                other(format!("metrics.{}", quote_key(&k))),
                other(")"),
            ]),
    ]
    .boxed()
}

// ---------------------------------------------------------------- values

/// A string literal with either quote and its escapes.
fn string_literal(content: String, double: bool) -> String {
    let q = if double { '"' } else { '\'' };
    let mut out = String::from(q);
    for c in content.chars() {
        if c == q || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push(q);
    out
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i32>().prop_map(|n| n.to_string()),
        (-1e6f64..1e6).prop_map(|f| f.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        prop::sample::select(
            &[
                "0", "-0", ".5", "5.", "1e-3", "-2.5E+4", "1e308", "1e400", "0.001", "3",
            ][..]
        )
        .prop_map(str::to_string),
    ]
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(
            &[
                "finished", "running", "crashed", "adam", "high", "baseline", "run-0", "fuzz",
                "team-a", "training", "%a%", "run_%", "", "2026-11-20", "2026-11-20T10:00",
                "1970-01-01 00:00:30Z", "2026-13-01", "9999-12-31T23:59:59",
                "20799999920-1-9",
            ][..]
        )
        .prop_map(str::to_string),
        2 => "[ -~é日\t]{0,12}",
    ]
}

/// A literal: a number, a string in either quote, or a keyword value.
pub fn literal() -> BoxedStrategy<Vec<Token>> {
    prop_oneof![
        3 => number().prop_map(|n| vec![other(n)]),
        3 => (string(), any::<bool>()).prop_map(|(s, d)| vec![other(string_literal(s, d))]),
        1 => prop::sample::select(&["true", "false", "null", "inf", "infinity", "nan"][..])
            .prop_flat_map(any_case)
            .prop_map(|w| vec![other(w)]),
        1 => any_case("inf").prop_map(|w| vec![other("-"), other(w)]),
    ]
    .boxed()
}

// ---------------------------------------------------------------- conditions

fn op() -> impl Strategy<Value = Token> {
    prop::sample::select(&["=", "==", "!=", "<>", "<", "<=", ">", ">="][..])
        .prop_map(|o| tok(o, Kind::Op))
}

fn maybe_not(negated: bool) -> Vec<Token> {
    if negated {
        vec![keyword("not")]
    } else {
        Vec::new()
    }
}

/// One condition: a comparison, `[not] in (…)`, `[not] like`/`ilike`,
/// `[not] contains`, `is [not] null`.
pub fn condition() -> BoxedStrategy<Vec<Token>> {
    prop_oneof![
        4 => (field(), op(), literal()).prop_map(|(f, o, l)| [f, vec![o], l].concat()),
        1 => (field(), any::<bool>(), prop::collection::vec(literal(), 1..5)).prop_map(
            |(f, negated, values)| {
                let mut out = [f, maybe_not(negated), vec![keyword("in"), other("(")]].concat();
                for (i, v) in values.into_iter().enumerate() {
                    if i > 0 {
                        out.push(other(","));
                    }
                    out.extend(v);
                }
                out.push(other(")"));
                out
            }
        ),
        1 => (field(), any::<bool>(), any::<bool>(), string(), any::<bool>()).prop_map(
            |(f, negated, ci, pattern, double)| {
                let word = if ci { "ilike" } else { "like" };
                [
                    f,
                    maybe_not(negated),
                    vec![keyword(word), other(string_literal(pattern, double))],
                ]
                .concat()
            }
        ),
        1 => (field(), any::<bool>(), literal()).prop_map(|(f, negated, l)| {
            [f, maybe_not(negated), vec![keyword("contains")], l].concat()
        }),
        1 => (field(), any::<bool>()).prop_map(|(f, negated)| {
            [f, vec![keyword("is")], maybe_not(negated), vec![keyword("null")]].concat()
        }),
    ]
    .boxed()
}

/// A filter: conditions joined by `and`/`or`, negated, parenthesized.
pub fn filter_tokens() -> BoxedStrategy<Vec<Token>> {
    condition()
        .prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                (prop::collection::vec(inner.clone(), 2..5), any::<bool>()).prop_map(
                    |(operands, and)| {
                        let mut out = Vec::new();
                        for (i, o) in operands.into_iter().enumerate() {
                            if i > 0 {
                                out.push(keyword(if and { "and" } else { "or" }));
                            }
                            out.extend(o);
                        }
                        out
                    }
                ),
                inner
                    .clone()
                    .prop_map(|e| [vec![keyword("not")], e].concat()),
                inner.prop_map(|e| [vec![other("(")], e, vec![other(")")]].concat()),
            ]
        })
        .boxed()
}

/// A sort spec: fields, each maybe `-` (descending), joined by commas.
pub fn sort_tokens() -> BoxedStrategy<Vec<Token>> {
    prop::collection::vec((any::<bool>(), field()), 1..4)
        .prop_map(|keys| {
            let mut out = Vec::new();
            for (i, (descending, f)) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(other(","));
                }
                if descending {
                    out.push(other("-"));
                }
                out.extend(f);
            }
            out
        })
        .boxed()
}

// ---------------------------------------------------------------- edits

#[derive(Debug, Clone)]
enum Edit {
    Drop(Index),
    Double(Index),
    SwapWithNext(Index),
    Replace(Index, &'static str),
    Insert(Index, &'static str),
    /// The text cut at a character.
    Cut(Index),
    /// `depth` parentheses around the whole (the parser allows 64).
    Nest(usize),
    /// `n` copies joined by `and` (the parser allows 1,000 conditions).
    Chain(usize),
    /// An `in` list of `n` values (the parser allows 10,000).
    LongList(usize),
}

const JUNK: &[&str] = &[
    "(",
    ")",
    ",",
    "and",
    "or",
    "not",
    "in",
    "is",
    "null",
    "like",
    "=",
    "<",
    "!",
    "~",
    "-",
    "'",
    "\"",
    "`",
    "``",
    "1e",
    "..",
    "1e+",
    "é",
    "\u{0}",
    "min(",
    "metrics.",
    "config.",
    "-inf",
    "datasets.x",
    "min(config.lr)",
];

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => any::<Index>().prop_map(Edit::Drop),
        2 => any::<Index>().prop_map(Edit::Double),
        2 => any::<Index>().prop_map(Edit::SwapWithNext),
        3 => (any::<Index>(), prop::sample::select(JUNK)).prop_map(|(i, j)| Edit::Replace(i, j)),
        3 => (any::<Index>(), prop::sample::select(JUNK)).prop_map(|(i, j)| Edit::Insert(i, j)),
        2 => any::<Index>().prop_map(Edit::Cut),
        1 => (60usize..70).prop_map(Edit::Nest),
        1 => prop_oneof![1usize..4, 995usize..1005].prop_map(Edit::Chain),
        1 => prop_oneof![1usize..4, 9_999usize..10_002].prop_map(Edit::LongList),
    ]
}

fn edited(tokens: Vec<Token>, edits: Vec<Edit>) -> Query {
    let valid = edits.is_empty();
    let mut tokens = tokens;
    let mut raw = None;
    for edit in edits {
        let n = tokens.len();
        match edit {
            Edit::Drop(i) if n > 0 => {
                tokens.remove(i.index(n));
            }
            Edit::Double(i) if n > 0 => {
                let t = tokens[i.index(n)].clone();
                tokens.insert(i.index(n), t);
            }
            Edit::SwapWithNext(i) if n > 1 => tokens.swap(i.index(n - 1), i.index(n - 1) + 1),
            Edit::Replace(i, junk) if n > 0 => tokens[i.index(n)] = other(junk),
            Edit::Insert(i, junk) => tokens.insert(i.index(n + 1), other(junk)),
            Edit::Cut(i) => {
                let text = join(tokens.iter().map(|t| t.text.clone()));
                let cut = i.index(text.chars().count() + 1);
                raw = Some(text.chars().take(cut).collect());
            }
            Edit::Nest(depth) => {
                let inner = std::mem::take(&mut tokens);
                tokens = [vec![other("("); depth], inner, vec![other(")"); depth]].concat();
            }
            Edit::Chain(copies) => {
                let one = std::mem::take(&mut tokens);
                for c in 0..copies {
                    if c > 0 {
                        tokens.push(keyword("and"));
                    }
                    tokens.push(other("("));
                    tokens.extend(one.iter().cloned());
                    tokens.push(other(")"));
                }
            }
            Edit::LongList(values) => {
                let list = vec!["'x'"; values].join(",");
                tokens.extend([keyword("or"), other("id"), keyword("in")]);
                tokens.push(other(format!("({list})")));
            }
            _ => {}
        }
    }
    Query { tokens, valid, raw }
}

/// Filters: half as the grammar makes them, half edited.
pub fn filter() -> BoxedStrategy<Query> {
    (
        filter_tokens(),
        prop_oneof![
            1 => Just(Vec::new()),
            1 => prop::collection::vec(edit(), 1..3),
        ],
    )
        .prop_map(|(tokens, edits)| edited(tokens, edits))
        .boxed()
}

/// Sort specs, a quarter of them edited.
pub fn sort() -> BoxedStrategy<Query> {
    (
        sort_tokens(),
        prop_oneof![
            3 => Just(Vec::new()),
            1 => prop::collection::vec(edit(), 1..2),
        ],
    )
        .prop_map(|(tokens, edits)| edited(tokens, edits))
        .boxed()
}
