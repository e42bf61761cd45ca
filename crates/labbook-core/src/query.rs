//! The run query language shared by `labbook ls --filter`, the dashboard and
//! the MLflow search translation:
//!
//! ```text
//! config.lr > 0.01 and status = "finished"
//! min(metrics.val/loss) < 0.3 or tags contains "baseline"
//! config.`odd key` in (1, 2) and not notes like "%dropout%"
//! created >= "2026-11-01" and group is not null
//! ```
//!
//! Fields: `config.KEY`, `metrics.KEY` (last value; `min(…)`, `max(…)`,
//! `last(…)`, `count(…)` for the others), `summary.KEY` (values the user set,
//! falling back to the metric's last), and the attributes `id name project
//! group status notes tags host created ended duration exit_code`.
//! A comparison with a missing field is false, as in SQL.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use thiserror::Error;

use crate::config::ConfigValue;
use crate::run::RunRecord;

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Every operand holds. A chain `a and b and c` is one node, never a
    /// tree as deep as the chain, so evaluating or dropping it recurses only
    /// as deep as the query's parentheses, which the parser bounds.
    And(Vec<Expr>),
    /// Some operand holds; flat like [`Expr::And`].
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Compare {
        field: Field,
        op: CmpOp,
        value: Literal,
    },
    In {
        field: Field,
        values: Vec<Literal>,
        negated: bool,
    },
    IsNull {
        field: Field,
        negated: bool,
    },
    Like {
        field: Field,
        pattern: String,
        case_insensitive: bool,
        negated: bool,
    },
    Contains {
        field: Field,
        value: Literal,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Num(f64),
    Str(String),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    Attr(Attr),
    Config(String),
    Metric(String, Agg),
    Summary(String),
    /// A config value as the string MLflow shows for a param.
    Param(String),
    /// A key/value tag.
    Tag(String),
    /// A property of the run's datasets: a list, so `=` and `in` ask
    /// whether any dataset has the value.
    Dataset(DatasetAttr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetAttr {
    Name,
    Digest,
    Context,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Attr {
    Id,
    Name,
    Project,
    Group,
    Status,
    Notes,
    Tags,
    Host,
    Created,
    Ended,
    Duration,
    ExitCode,
    /// The run this one is nested under (MLflow's `mlflow.parentRunId`).
    Parent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Agg {
    Last,
    Min,
    Max,
    Count,
}

const ATTRS: [(&str, Attr); 13] = [
    ("id", Attr::Id),
    ("name", Attr::Name),
    ("project", Attr::Project),
    ("group", Attr::Group),
    ("status", Attr::Status),
    ("notes", Attr::Notes),
    ("tags", Attr::Tags),
    ("host", Attr::Host),
    ("created", Attr::Created),
    ("ended", Attr::Ended),
    ("duration", Attr::Duration),
    ("exit_code", Attr::ExitCode),
    ("parent", Attr::Parent),
];

impl Attr {
    pub fn name(self) -> &'static str {
        ATTRS
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("?", |(n, _)| n)
    }

    fn is_time(self) -> bool {
        matches!(self, Attr::Created | Attr::Ended)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Attr(a) => f.write_str(a.name()),
            Field::Config(k) => write!(f, "config.{}", quote_key(k)),
            Field::Summary(k) => write!(f, "summary.{}", quote_key(k)),
            Field::Metric(k, Agg::Last) => write!(f, "metrics.{}", quote_key(k)),
            Field::Param(k) => write!(f, "params.{}", quote_key(k)),
            Field::Tag(k) => write!(f, "tags.{}", quote_key(k)),
            Field::Dataset(a) => f.write_str(match a {
                DatasetAttr::Name => "datasets.name",
                DatasetAttr::Digest => "datasets.digest",
                DatasetAttr::Context => "datasets.context",
            }),
            Field::Metric(k, agg) => {
                let name = match agg {
                    Agg::Min => "min",
                    Agg::Max => "max",
                    Agg::Count => "count",
                    Agg::Last => "last",
                };
                write!(f, "{name}(metrics.{})", quote_key(k))
            }
        }
    }
}

fn quote_key(key: &str) -> Cow<'_, str> {
    if !key.is_empty() && key.chars().all(is_ident_char) {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(format!("`{}`", key.replace('`', "``")))
    }
}

/// A query the user typed that does not parse; `column` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "invalid {what} at column {column}: {} (in: {})",
    crate::config::clip(.message, 1, 160),
    crate::config::clip(.input, *.column, 80)
)]
pub struct QueryError {
    pub what: &'static str,
    pub message: String,
    pub column: usize,
    pub input: String,
}

// ---------------------------------------------------------------- lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Op(CmpOp),
    LParen,
    RParen,
    Comma,
    Minus,
    End,
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '/' | '-' | '@' | ':' | '[' | ']')
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    what: &'static str,
}

impl<'a> Lexer<'a> {
    fn error(&self, at: usize, message: impl Into<String>) -> QueryError {
        QueryError {
            what: self.what,
            message: message.into(),
            column: self.src[..at.min(self.src.len())].chars().count() + 1,
            input: self.src.to_string(),
        }
    }

    fn peek_char(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn tokens(mut self) -> Result<Vec<(Tok, usize)>, QueryError> {
        let mut out = Vec::new();
        loop {
            while self.peek_char().is_some_and(char::is_whitespace) {
                self.pos += self.peek_char().map_or(0, char::len_utf8);
            }
            let start = self.pos;
            let Some(c) = self.peek_char() else {
                out.push((Tok::End, start));
                return Ok(out);
            };
            let tok = match c {
                '(' => self.single(Tok::LParen),
                ')' => self.single(Tok::RParen),
                ',' => self.single(Tok::Comma),
                '=' => {
                    self.pos += 1;
                    if self.peek_char() == Some('=') {
                        self.pos += 1;
                    }
                    Tok::Op(CmpOp::Eq)
                }
                '!' => {
                    self.pos += 1;
                    if self.peek_char() != Some('=') {
                        return Err(self.error(start, "expected '!=' "));
                    }
                    self.pos += 1;
                    Tok::Op(CmpOp::Ne)
                }
                '<' => {
                    self.pos += 1;
                    match self.peek_char() {
                        Some('=') => self.single(Tok::Op(CmpOp::Le)),
                        Some('>') => self.single(Tok::Op(CmpOp::Ne)),
                        _ => Tok::Op(CmpOp::Lt),
                    }
                }
                '>' => {
                    self.pos += 1;
                    if self.peek_char() == Some('=') {
                        self.single(Tok::Op(CmpOp::Ge))
                    } else {
                        Tok::Op(CmpOp::Gt)
                    }
                }
                '"' | '\'' => Tok::Str(self.string(c)?),
                '-' => {
                    let next = self.src[self.pos + 1..].chars().next();
                    if next.is_some_and(|n| n.is_ascii_digit() || n == '.') {
                        self.number()?
                    } else {
                        self.single(Tok::Minus)
                    }
                }
                c if c.is_ascii_digit() || c == '.' => self.number()?,
                c if is_ident_start(c) || c == '`' => Tok::Ident(self.ident()?),
                other => return Err(self.error(start, format!("unexpected character {other:?}"))),
            };
            out.push((tok, start));
        }
    }

    fn single(&mut self, tok: Tok) -> Tok {
        self.pos += self.peek_char().map_or(0, char::len_utf8);
        tok
    }

    fn string(&mut self, quote: char) -> Result<String, QueryError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        while let Some(c) = self.peek_char() {
            self.pos += c.len_utf8();
            match c {
                '\\' => {
                    let Some(escaped) = self.peek_char() else {
                        break;
                    };
                    self.pos += escaped.len_utf8();
                    out.push(match escaped {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                }
                c if c == quote => return Ok(out),
                c => out.push(c),
            }
        }
        Err(self.error(start, "unterminated string"))
    }

    fn number(&mut self) -> Result<Tok, QueryError> {
        let start = self.pos;
        let bytes = self.src.as_bytes();
        let mut end = self.pos;
        if bytes.get(end) == Some(&b'-') {
            end += 1;
        }
        while end < bytes.len() {
            let b = bytes[end];
            let exponent_sign = matches!(b, b'+' | b'-') && matches!(bytes[end - 1], b'e' | b'E');
            if b.is_ascii_digit() || b == b'.' || b == b'e' || b == b'E' || exponent_sign {
                end += 1;
            } else {
                break;
            }
        }
        let text = &self.src[start..end];
        self.pos = end;
        text.parse::<f64>()
            .map(Tok::Num)
            .map_err(|_| self.error(start, format!("{text:?} is not a number")))
    }

    /// A field name: identifier characters and `backtick quoted` parts, with
    /// no space between them (`config.`my key`.x`).
    fn ident(&mut self) -> Result<String, QueryError> {
        let mut out = String::new();
        while let Some(c) = self.peek_char() {
            if c == '`' {
                let start = self.pos;
                self.pos += 1;
                loop {
                    match self.peek_char() {
                        None => return Err(self.error(start, "unterminated `quoted` name")),
                        Some('`') if self.src[self.pos + 1..].starts_with('`') => {
                            out.push('`');
                            self.pos += 2;
                        }
                        Some('`') => {
                            self.pos += 1;
                            break;
                        }
                        Some(c) => {
                            out.push(c);
                            self.pos += c.len_utf8();
                        }
                    }
                }
            } else if is_ident_char(c) {
                out.push(c);
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------- parser

struct Parser<'a> {
    lexer: Lexer<'a>,
    toks: Vec<(Tok, usize)>,
    i: usize,
    /// Parentheses and `not`s open around the current token.
    depth: usize,
    /// Conditions parsed so far.
    conditions: usize,
}

/// The deepest a filter may nest parentheses and `not`s. Parsing and
/// evaluation recurse once per level, so a bound keeps a hostile query
/// (thousands of `(`) from exhausting the stack; real queries nest a few.
pub const MAX_NESTING: usize = 64;

/// The most conditions one filter may hold, and values one `in (…)` list:
/// a filter is evaluated against every run, so its size bounds the work of
/// a request. Both are far above what people write or tools generate.
pub const MAX_CONDITIONS: usize = 1_000;
pub const MAX_LIST_VALUES: usize = 10_000;

impl<'a> Parser<'a> {
    fn new(src: &'a str, what: &'static str) -> Result<Self, QueryError> {
        let toks = Lexer { src, pos: 0, what }.tokens()?;
        Ok(Parser {
            lexer: Lexer { src, pos: 0, what },
            toks,
            i: 0,
            depth: 0,
            conditions: 0,
        })
    }

    fn peek(&self) -> &Tok {
        &self.toks[self.i.min(self.toks.len() - 1)].0
    }

    fn offset(&self) -> usize {
        self.toks[self.i.min(self.toks.len() - 1)].1
    }

    fn bump(&mut self) -> Tok {
        let tok = self.peek().clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        tok
    }

    fn error(&self, message: impl Into<String>) -> QueryError {
        self.lexer.error(self.offset(), message)
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s.eq_ignore_ascii_case(word))
    }

    fn eat_keyword(&mut self, word: &str) -> bool {
        let hit = self.keyword(word);
        if hit {
            self.bump();
        }
        hit
    }

    fn describe(tok: &Tok) -> String {
        match tok {
            Tok::Ident(s) => format!("{s:?}"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Num(n) => format!("number {n}"),
            Tok::Op(_) => "an operator".into(),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::Comma => "','".into(),
            Tok::Minus => "'-'".into(),
            Tok::End => "the end".into(),
        }
    }

    fn or(&mut self) -> Result<Expr, QueryError> {
        let first = self.and()?;
        let mut operands = vec![first];
        while self.eat_keyword("or") {
            operands.push(self.and()?);
        }
        Ok(Expr::any(operands))
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        let first = self.unary()?;
        let mut operands = vec![first];
        while self.eat_keyword("and") {
            operands.push(self.unary()?);
        }
        Ok(Expr::all(operands))
    }

    /// Enters one level of nesting, refusing past [`MAX_NESTING`].
    fn nest(&mut self) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.error(format!(
                "the filter nests deeper than {MAX_NESTING} levels of parentheses and 'not'"
            )));
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        if self.eat_keyword("not") {
            self.nest()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        if *self.peek() == Tok::LParen {
            self.nest()?;
            self.bump();
            let inner = self.or()?;
            if self.bump() != Tok::RParen {
                return Err(self.error("expected ')'"));
            }
            self.depth -= 1;
            return Ok(inner);
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Expr, QueryError> {
        self.conditions += 1;
        if self.conditions > MAX_CONDITIONS {
            return Err(self.error(format!(
                "the filter has more than {MAX_CONDITIONS} conditions"
            )));
        }
        let field = self.field()?;
        if let Tok::Op(op) = *self.peek() {
            self.bump();
            let value = self.literal()?;
            return Ok(Expr::Compare { field, op, value });
        }
        let negated = self.eat_keyword("not");
        if self.eat_keyword("in") {
            return Ok(Expr::In {
                field,
                values: self.list()?,
                negated,
            });
        }
        for (word, case_insensitive) in [("like", false), ("ilike", true)] {
            if self.eat_keyword(word) {
                return match self.literal()? {
                    Literal::Str(pattern) => Ok(Expr::Like {
                        field,
                        pattern,
                        case_insensitive,
                        negated,
                    }),
                    _ => {
                        Err(self.error(format!("{word} needs a string pattern such as \"%drop%\"")))
                    }
                };
            }
        }
        if self.eat_keyword("contains") {
            let value = self.literal()?;
            let expr = Expr::Contains { field, value };
            return Ok(if negated {
                Expr::Not(Box::new(expr))
            } else {
                expr
            });
        }
        if negated {
            return Err(self.error("expected 'in', 'like', 'ilike' or 'contains' after 'not'"));
        }
        if self.eat_keyword("is") {
            let negated = self.eat_keyword("not");
            if !self.eat_keyword("null") {
                return Err(self.error("expected 'null' after 'is'"));
            }
            return Ok(Expr::IsNull { field, negated });
        }
        Err(self.error(format!(
            "expected an operator (= != < <= > >= in like contains is) after {field}, found {}",
            Self::describe(self.peek())
        )))
    }

    fn list(&mut self) -> Result<Vec<Literal>, QueryError> {
        if self.bump() != Tok::LParen {
            return Err(self.error("expected '(' to start a list"));
        }
        let mut values = vec![self.literal()?];
        loop {
            match self.bump() {
                Tok::Comma if values.len() >= MAX_LIST_VALUES => {
                    return Err(
                        self.error(format!("a list holds at most {MAX_LIST_VALUES} values"))
                    );
                }
                Tok::Comma => values.push(self.literal()?),
                Tok::RParen => return Ok(values),
                other => {
                    return Err(self.error(format!(
                        "expected ',' or ')' in list, found {}",
                        Self::describe(&other)
                    )));
                }
            }
        }
    }

    fn literal(&mut self) -> Result<Literal, QueryError> {
        let offset = self.offset();
        match self.bump() {
            Tok::Num(n) => Ok(Literal::Num(n)),
            Tok::Str(s) => Ok(Literal::Str(s)),
            Tok::Minus if self.keyword("inf") || self.keyword("infinity") => {
                self.bump();
                Ok(Literal::Num(f64::NEG_INFINITY))
            }
            Tok::Ident(word) => match word.to_ascii_lowercase().as_str() {
                "true" => Ok(Literal::Bool(true)),
                "false" => Ok(Literal::Bool(false)),
                "null" => Ok(Literal::Null),
                "inf" | "infinity" => Ok(Literal::Num(f64::INFINITY)),
                "nan" => Ok(Literal::Num(f64::NAN)),
                _ => Err(self.lexer.error(
                    offset,
                    format!("expected a value, found {word:?} (quote strings: \"{word}\")"),
                )),
            },
            other => Err(self.lexer.error(
                offset,
                format!("expected a value, found {}", Self::describe(&other)),
            )),
        }
    }

    fn field(&mut self) -> Result<Field, QueryError> {
        let offset = self.offset();
        let name = match self.bump() {
            Tok::Ident(name) => name,
            other => {
                return Err(self.lexer.error(
                    offset,
                    format!("expected a field name, found {}", Self::describe(&other)),
                ));
            }
        };
        let agg = match name.to_ascii_lowercase().as_str() {
            "min" => Some(Agg::Min),
            "max" => Some(Agg::Max),
            "last" => Some(Agg::Last),
            "count" => Some(Agg::Count),
            _ => None,
        };
        if let (Some(agg), Tok::LParen) = (agg, self.peek()) {
            self.bump();
            let inner_offset = self.offset();
            let field = self.field()?;
            if self.bump() != Tok::RParen {
                return Err(self.error("expected ')' after the metric name"));
            }
            return match field {
                Field::Metric(key, Agg::Last) => Ok(Field::Metric(key, agg)),
                other => Err(self.lexer.error(
                    inner_offset,
                    format!("min/max/last/count apply to metrics.KEY, not {other}"),
                )),
            };
        }
        resolve_field(&name).map_err(|message| self.lexer.error(offset, message))
    }
}

/// Maps a dotted name to a field, with a hint when it names nothing.
pub fn resolve_field(name: &str) -> Result<Field, String> {
    let (namespace, rest) = name.split_once('.').unwrap_or((name, ""));
    let need_key = |ns: &str| format!("{ns}. needs a key after the dot, e.g. {ns}.lr");
    match namespace.to_ascii_lowercase().as_str() {
        "config" | "params" => (!rest.is_empty())
            .then(|| Field::Config(rest.into()))
            .ok_or_else(|| need_key("config")),
        "metrics" | "metric" => (!rest.is_empty())
            .then(|| Field::Metric(rest.into(), Agg::Last))
            .ok_or_else(|| need_key("metrics")),
        "tags" if !rest.is_empty() => Ok(Field::Tag(rest.into())),
        "datasets" | "dataset" => match rest.to_ascii_lowercase().as_str() {
            "name" => Ok(Field::Dataset(DatasetAttr::Name)),
            "digest" => Ok(Field::Dataset(DatasetAttr::Digest)),
            "context" => Ok(Field::Dataset(DatasetAttr::Context)),
            _ => Err("datasets. takes name, digest or context".into()),
        },
        "summary" => (!rest.is_empty())
            .then(|| Field::Summary(rest.into()))
            .ok_or_else(|| need_key("summary")),
        _ => ATTRS
            .iter()
            .find(|(attr, _)| attr.eq_ignore_ascii_case(name))
            .map(|(_, a)| Field::Attr(*a))
            .ok_or_else(|| {
                format!(
                    "unknown field {name:?}; use config.{name}, metrics.{name}, or one of: {}",
                    ATTRS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(" ")
                )
            }),
    }
}

/// Parses a filter expression.
pub fn parse_filter(src: &str) -> Result<Expr, QueryError> {
    let mut parser = Parser::new(src, "filter")?;
    if *parser.peek() == Tok::End {
        return Err(parser.error("the filter is empty"));
    }
    let expr = parser.or()?;
    if *parser.peek() != Tok::End {
        return Err(parser.error(format!(
            "unexpected {} (join conditions with 'and' / 'or')",
            Parser::describe(parser.peek())
        )));
    }
    Ok(expr)
}

/// One sort key: `-metrics.val/loss` sorts descending.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub field: Field,
    pub descending: bool,
}

/// Parses a comma-separated sort spec such as `-metrics.val/acc,created`.
pub fn parse_sort(src: &str) -> Result<Vec<SortKey>, QueryError> {
    let mut parser = Parser::new(src, "sort")?;
    let mut keys = Vec::new();
    loop {
        let descending = match parser.peek() {
            Tok::Minus => {
                parser.bump();
                true
            }
            _ => false,
        };
        keys.push(SortKey {
            field: parser.field()?,
            descending,
        });
        match parser.bump() {
            Tok::Comma => continue,
            Tok::End => return Ok(keys),
            other => {
                return Err(parser.error(format!(
                    "expected ',' or the end, found {}",
                    Parser::describe(&other)
                )));
            }
        }
    }
}

// ---------------------------------------------------------------- evaluation

/// A field's value on one run.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Missing,
    Num(f64),
    Str(Cow<'a, str>),
    Bool(bool),
    List(Cow<'a, [String]>),
}

/// What a filter or sort reads from a run. The store implements it over its
/// own rows; `RunView` implements it over a loaded `RunRecord`.
pub trait Fields {
    fn get(&self, field: &Field) -> Value<'_>;
}

/// A run as the query language sees it at one instant (`duration` of a
/// running run depends on now).
pub struct RunView<'a> {
    pub run: &'a RunRecord,
    pub now_ms: i64,
}

impl Fields for RunView<'_> {
    fn get(&self, field: &Field) -> Value<'_> {
        let run = self.run;
        let opt_str = |s: &'_ Option<String>| match s {
            Some(s) => Value::Str(Cow::Owned(s.clone())),
            None => Value::Missing,
        };
        match field {
            Field::Attr(attr) => match attr {
                Attr::Id => Value::Str(Cow::Borrowed(&run.id)),
                Attr::Name => Value::Str(Cow::Borrowed(&run.name)),
                Attr::Project => Value::Str(Cow::Borrowed(&run.project)),
                Attr::Group => opt_str(&run.group),
                Attr::Status => Value::Str(Cow::Borrowed(run.status.as_str())),
                Attr::Notes => opt_str(&run.notes),
                Attr::Host => opt_str(&run.host),
                Attr::Parent => run
                    .parent_id()
                    .map_or(Value::Missing, |p| Value::Str(Cow::Borrowed(p))),
                Attr::Tags => Value::List(Cow::Borrowed(&run.tags)),
                Attr::Created => Value::Num(run.created_ms as f64),
                Attr::Ended => run
                    .ended_ms
                    .map_or(Value::Missing, |t| Value::Num(t as f64)),
                Attr::Duration => Value::Num(run.duration_ms(self.now_ms) as f64 / 1000.0),
                Attr::ExitCode => run
                    .exit_code
                    .map_or(Value::Missing, |c| Value::Num(c as f64)),
            },
            Field::Config(key) => match run.config.get(key) {
                None | Some(ConfigValue::Null) => Value::Missing,
                Some(ConfigValue::Int(i)) => Value::Num(*i as f64),
                Some(ConfigValue::Float(f)) => Value::Num(*f),
                Some(ConfigValue::Bool(b)) => Value::Bool(*b),
                Some(ConfigValue::Str(s)) => Value::Str(Cow::Borrowed(s)),
                Some(other) => Value::Str(Cow::Owned(other.display())),
            },
            Field::Metric(key, agg) => metric_value(run, key, *agg),
            Field::Param(key) => match (run.param_text.get(key), run.config.get(key)) {
                (Some(text), _) => Value::Str(Cow::Borrowed(text)),
                (None, None) => Value::Missing,
                (None, Some(ConfigValue::Str(s))) => Value::Str(Cow::Borrowed(s)),
                (None, Some(other)) => Value::Str(Cow::Owned(other.display())),
            },
            Field::Tag(key) => run
                .kv_tags
                .get(key)
                .map_or(Value::Missing, |v| Value::Str(Cow::Borrowed(v))),
            // A run without datasets has none to compare: like MLflow's
            // join, no condition on datasets holds for it.
            Field::Dataset(_) if run.inputs.is_empty() => Value::Missing,
            Field::Dataset(attr) => Value::List(Cow::Owned(
                run.inputs
                    .iter()
                    .filter_map(|d| match attr {
                        DatasetAttr::Name => Some(d.name.clone()),
                        DatasetAttr::Digest => Some(d.digest.clone()),
                        DatasetAttr::Context => d.context().map(str::to_string),
                    })
                    .collect(),
            )),
            Field::Summary(key) => match run.summary.get(key) {
                Some(serde_json::Value::Number(n)) => n.as_f64().map_or(Value::Missing, Value::Num),
                Some(serde_json::Value::String(s)) => Value::Str(Cow::Borrowed(s)),
                Some(serde_json::Value::Bool(b)) => Value::Bool(*b),
                Some(serde_json::Value::Null) => Value::Missing,
                Some(other) => Value::Str(Cow::Owned(other.to_string())),
                None => metric_value(run, key, Agg::Last),
            },
        }
    }
}

fn metric_value<'a>(run: &'a RunRecord, key: &str, agg: Agg) -> Value<'a> {
    let Some(summary) = run.metrics.get(key) else {
        return Value::Missing;
    };
    match agg {
        Agg::Last => Value::Num(summary.last),
        Agg::Min => summary.min.map_or(Value::Missing, Value::Num),
        Agg::Max => summary.max.map_or(Value::Missing, Value::Num),
        Agg::Count => Value::Num(summary.count as f64),
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD`, optionally with `THH:MM[:SS]` (or a space), read as UTC.
pub fn parse_datetime_ms(s: &str) -> Option<i64> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut parts = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    // Years past 9999 would overflow the millisecond arithmetic below.
    if parts.next().is_some()
        || !(1..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
    {
        return None;
    }
    let mut seconds = 0;
    if let Some(time) = time {
        let mut t = time.split(':').map(|p| p.parse::<f64>().ok());
        let h = t.next()??;
        let min = t.next().unwrap_or(Some(0.0))?;
        let sec = t.next().unwrap_or(Some(0.0))?;
        if !((0.0..24.0).contains(&h) && (0.0..60.0).contains(&min) && (0.0..61.0).contains(&sec)) {
            return None;
        }
        seconds = (h * 3600.0 + min * 60.0 + sec) as i64;
    }
    Some((days_from_civil(y, m, d) * 86_400 + seconds) * 1000)
}

fn literal_as_num(field: &Field, lit: &Literal) -> Option<f64> {
    match lit {
        Literal::Num(n) => Some(*n),
        Literal::Str(s) if matches!(field, Field::Attr(a) if a.is_time()) => {
            parse_datetime_ms(s).map(|t| t as f64)
        }
        _ => None,
    }
}

fn compare(field: &Field, value: &Value<'_>, lit: &Literal) -> Option<Ordering> {
    match (value, lit) {
        (Value::Num(a), _) => a.partial_cmp(&literal_as_num(field, lit)?),
        (Value::Str(a), Literal::Str(b)) => Some(a.as_ref().cmp(b.as_str())),
        (Value::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn op_holds(op: CmpOp, ord: Option<Ordering>) -> bool {
    match (op, ord) {
        (CmpOp::Ne, None) => false,
        (_, None) => false,
        (CmpOp::Eq, Some(o)) => o == Ordering::Equal,
        (CmpOp::Ne, Some(o)) => o != Ordering::Equal,
        (CmpOp::Lt, Some(o)) => o == Ordering::Less,
        (CmpOp::Le, Some(o)) => o != Ordering::Greater,
        (CmpOp::Gt, Some(o)) => o == Ordering::Greater,
        (CmpOp::Ge, Some(o)) => o != Ordering::Less,
    }
}

fn list_has(items: &[String], lit: &Literal) -> bool {
    matches!(lit, Literal::Str(s) if items.iter().any(|t| t == s))
}

/// SQL LIKE: `%` any run of characters, `_` one character.
pub fn like_matches(text: &str, pattern: &str, case_insensitive: bool) -> bool {
    let fold = |s: &str| {
        if case_insensitive {
            s.to_lowercase()
        } else {
            s.to_string()
        }
    };
    let text: Vec<char> = fold(text).chars().collect();
    let pattern: Vec<char> = fold(pattern).chars().collect();
    let (mut t, mut p) = (0, 0);
    let (mut star_p, mut star_t) = (None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '_' || pattern[p] == text[t]) {
            t += 1;
            p += 1;
        } else if p < pattern.len() && pattern[p] == '%' {
            star_p = Some(p);
            star_t = t;
            p += 1;
        } else if let Some(sp) = star_p {
            p = sp + 1;
            star_t += 1;
            t = star_t;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '%')
}

impl Expr {
    /// The conjunction of `operands`, flattened: nested `And`s are spliced
    /// in, and one operand is itself.
    pub fn all(operands: Vec<Expr>) -> Expr {
        Self::flat(operands, true)
    }

    /// The disjunction of `operands`, flattened like [`Expr::all`].
    pub fn any(operands: Vec<Expr>) -> Expr {
        Self::flat(operands, false)
    }

    fn flat(operands: Vec<Expr>, conjunction: bool) -> Expr {
        let mut out = Vec::with_capacity(operands.len());
        for e in operands {
            match e {
                Expr::And(inner) if conjunction => out.extend(inner),
                Expr::Or(inner) if !conjunction => out.extend(inner),
                other => out.push(other),
            }
        }
        if out.len() == 1
            && let Some(only) = out.pop()
        {
            return only;
        }
        if conjunction {
            Expr::And(out)
        } else {
            Expr::Or(out)
        }
    }

    /// Whether a run satisfies the filter.
    pub fn matches(&self, run: &impl Fields) -> bool {
        match self {
            Expr::And(all) => all.iter().all(|e| e.matches(run)),
            Expr::Or(any) => any.iter().any(|e| e.matches(run)),
            Expr::Not(inner) => !inner.matches(run),
            Expr::Compare {
                field,
                op,
                value: Literal::Null,
            } => {
                let missing = run.get(field) == Value::Missing;
                match op {
                    CmpOp::Eq => missing,
                    CmpOp::Ne => !missing,
                    _ => false,
                }
            }
            Expr::Compare { field, op, value } => match run.get(field) {
                Value::List(items) => match op {
                    CmpOp::Eq => list_has(&items, value),
                    CmpOp::Ne => !list_has(&items, value),
                    _ => false,
                },
                v => op_holds(*op, compare(field, &v, value)),
            },
            Expr::In {
                field,
                values,
                negated,
            } => {
                let v = run.get(field);
                if v == Value::Missing {
                    return false;
                }
                let hit = values.iter().any(|lit| match &v {
                    Value::List(items) => list_has(items, lit),
                    v => compare(field, v, lit) == Some(Ordering::Equal),
                });
                hit != *negated
            }
            Expr::IsNull { field, negated } => (run.get(field) == Value::Missing) != *negated,
            Expr::Like {
                field,
                pattern,
                case_insensitive,
                negated,
            } => match run.get(field) {
                Value::Str(s) => like_matches(&s, pattern, *case_insensitive) != *negated,
                _ => false,
            },
            Expr::Contains { field, value } => match (run.get(field), value) {
                (Value::List(items), lit) => list_has(&items, lit),
                (Value::Str(s), Literal::Str(needle)) => s.contains(needle.as_str()),
                _ => false,
            },
        }
    }

    /// Every field the expression reads (the dashboard uses it to add columns).
    pub fn fields(&self) -> Vec<&Field> {
        let mut out = Vec::new();
        self.collect_fields(&mut out);
        out
    }

    fn collect_fields<'a>(&'a self, out: &mut Vec<&'a Field>) {
        match self {
            Expr::And(operands) | Expr::Or(operands) => {
                for e in operands {
                    e.collect_fields(out);
                }
            }
            Expr::Not(inner) => inner.collect_fields(out),
            Expr::Compare { field, .. }
            | Expr::In { field, .. }
            | Expr::IsNull { field, .. }
            | Expr::Like { field, .. }
            | Expr::Contains { field, .. } => out.push(field),
        }
    }
}

/// Orders two runs by sort keys; missing values go last whatever the direction.
pub fn compare_by(keys: &[SortKey], a: &impl Fields, b: &impl Fields) -> Ordering {
    let va: Vec<Value<'_>> = keys.iter().map(|k| a.get(&k.field)).collect();
    let vb: Vec<Value<'_>> = keys.iter().map(|k| b.get(&k.field)).collect();
    compare_values(keys, &va, &vb)
}

/// `compare_by` on values already read (`sort_values`), for sorting many
/// runs without looking every field up again in each comparison.
pub fn compare_values(keys: &[SortKey], a: &[Value<'_>], b: &[Value<'_>]) -> Ordering {
    for ((key, va), vb) in keys.iter().zip(a).zip(b) {
        let ord = match (va, vb) {
            (Value::Missing, Value::Missing) => Ordering::Equal,
            (Value::Missing, _) => return Ordering::Greater,
            (_, Value::Missing) => return Ordering::Less,
            // NaN sorts after every number whatever the direction, like a
            // missing value (MLflow's order too).
            (Value::Num(x), Value::Num(y)) if x.is_nan() || y.is_nan() => {
                match (x.is_nan(), y.is_nan()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => return Ordering::Greater,
                    _ => return Ordering::Less,
                }
            }
            (Value::Num(x), Value::Num(y)) => x.total_cmp(y),
            (Value::Str(x), Value::Str(y)) => x.cmp(y),
            (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
            (Value::List(x), Value::List(y)) => x.cmp(y),
            // Mixed kinds (a config key that is a number in one run and a
            // string in another): numbers first, deterministic.
            (x, y) => kind_rank(x).cmp(&kind_rank(y)),
        };
        let ord = if key.descending { ord.reverse() } else { ord };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

/// The values a run sorts by.
pub fn sort_values<'a>(keys: &[SortKey], run: &'a impl Fields) -> Vec<Value<'a>> {
    keys.iter().map(|k| run.get(&k.field)).collect()
}

fn kind_rank(v: &Value<'_>) -> u8 {
    match v {
        Value::Num(_) => 0,
        Value::Bool(_) => 1,
        Value::Str(_) => 2,
        Value::List(_) => 3,
        Value::Missing => 4,
    }
}

#[cfg(test)]
mod tests;
