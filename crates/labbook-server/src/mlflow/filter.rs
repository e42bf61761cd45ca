//! MLflow's search grammar (`metrics.acc > 0.9 and params.lr = '0.01'`,
//! `order_by=["metrics.acc DESC"]`) translated into labbook's query AST, so
//! that MLflow searches run through the same evaluator as the dashboard's.

use labbook_core::query::{
    Agg, Attr, CmpOp, DatasetAttr, Expr, Field, Literal, MAX_CONDITIONS, MAX_LIST_VALUES, SortKey,
};

use super::MlflowError;

/// What an MLflow identifier names, before it is mapped onto labbook fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Entity {
    Metric(String),
    Param(String),
    Tag(String),
    Attribute(String),
    Dataset(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Cmp(CmpOp),
    Like { case_insensitive: bool },
    In { negated: bool },
    IsNull { negated: bool },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub entity: Entity,
    pub op: Op,
    pub values: Vec<Literal>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Op(String),
    LParen,
    RParen,
    Comma,
}

fn bad(message: impl Into<String>) -> MlflowError {
    MlflowError::invalid(message)
}

fn quoted(chars: &[char], i: &mut usize, quote: char) -> Result<String, MlflowError> {
    let mut out = String::new();
    *i += 1;
    while *i < chars.len() {
        let c = chars[*i];
        *i += 1;
        if c == quote {
            if chars.get(*i) == Some(&quote) {
                out.push(quote);
                *i += 1;
                continue;
            }
            return Ok(out);
        }
        if c == '\\' && *i < chars.len() {
            out.push(chars[*i]);
            *i += 1;
            continue;
        }
        out.push(c);
    }
    Err(bad(format!("unterminated {quote} quote in the filter")))
}

fn tokens(src: &str) -> Result<Vec<Tok>, MlflowError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '\'' => out.push(Tok::Str(quoted(&chars, &mut i, '\'')?)),
            // A key quoted after `entity.` is read with its identifier below;
            // a double quote that starts a token is a string value.
            '"' => out.push(Tok::Str(quoted(&chars, &mut i, '"')?)),
            '=' | '!' | '<' | '>' => {
                let mut op = c.to_string();
                i += 1;
                if let Some(&n) = chars.get(i)
                    && (n == '=' || (c == '<' && n == '>'))
                {
                    op.push(n);
                    i += 1;
                }
                if op == "!" {
                    return Err(bad("'!' must be followed by '='"));
                }
                out.push(Tok::Op(op));
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '.' | '-' | '+'))
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n = text
                    .parse::<f64>()
                    .map_err(|_| bad(format!("{text:?} is not a number")))?;
                out.push(Tok::Num(n));
            }
            c if c.is_alphabetic() || c == '_' || c == '`' => {
                // An identifier: `entity.key`, where the key may be quoted
                // with backticks or double quotes to hold spaces or dots.
                let mut ident = String::new();
                while i < chars.len() {
                    let c = chars[i];
                    if c == '`' || (c == '"' && ident.ends_with('.')) {
                        ident.push_str(&quoted(&chars, &mut i, c)?);
                        break;
                    }
                    if c.is_alphanumeric() || matches!(c, '_' | '.' | '/' | '-' | ':' | '@') {
                        ident.push(c);
                        i += 1;
                    } else {
                        break;
                    }
                }
                out.push(Tok::Ident(ident));
            }
            other => return Err(bad(format!("unexpected {other:?} in the filter"))),
        }
    }
    Ok(out)
}

fn entity(ident: &str) -> Result<Entity, MlflowError> {
    let Some((kind, key)) = ident.split_once('.') else {
        return Ok(Entity::Attribute(ident.to_string()));
    };
    if key.is_empty() {
        return Err(bad(format!("{ident:?} names no key after the dot")));
    }
    let key = key.to_string();
    match kind.to_ascii_lowercase().as_str() {
        "metric" | "metrics" => Ok(Entity::Metric(key)),
        "param" | "params" | "parameter" | "parameters" => Ok(Entity::Param(key)),
        "tag" | "tags" => Ok(Entity::Tag(key)),
        "attribute" | "attributes" | "attr" | "run" => Ok(Entity::Attribute(key)),
        "dataset" | "datasets" => Ok(Entity::Dataset(key)),
        other => Err(bad(format!(
            "Invalid entity type '{other}'. Valid values are ['metric', 'parameter', 'tag', 'attribute', 'dataset']"
        ))),
    }
}

fn literal(tok: Option<Tok>) -> Result<Literal, MlflowError> {
    match tok {
        Some(Tok::Str(s)) => Ok(Literal::Str(s)),
        Some(Tok::Num(n)) => Ok(Literal::Num(n)),
        Some(other) => Err(bad(format!("expected a value, found {other:?}"))),
        None => Err(bad("the filter ends where a value should be")),
    }
}

/// Parses a filter into clauses joined by AND (MLflow has no OR).
pub fn parse(src: &str) -> Result<Vec<Clause>, MlflowError> {
    let toks = tokens(src)?;
    let mut it = toks.into_iter().peekable();
    let mut clauses = Vec::new();
    while it.peek().is_some() {
        let ident = match it.next() {
            Some(Tok::Ident(s)) => s,
            other => {
                return Err(bad(format!(
                    "expected a field such as metrics.acc, found {other:?}"
                )));
            }
        };
        let entity = entity(&ident)?;
        let word = |t: &Option<&Tok>, w: &str| matches!(t, Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(w));
        let (op, values) = match it.next() {
            Some(Tok::Op(op)) => {
                let cmp = match op.as_str() {
                    "=" | "==" => CmpOp::Eq,
                    "!=" | "<>" => CmpOp::Ne,
                    "<" => CmpOp::Lt,
                    "<=" => CmpOp::Le,
                    ">" => CmpOp::Gt,
                    ">=" => CmpOp::Ge,
                    other => return Err(bad(format!("unknown comparator {other:?}"))),
                };
                (Op::Cmp(cmp), vec![literal(it.next())?])
            }
            Some(Tok::Ident(w))
                if w.eq_ignore_ascii_case("like") || w.eq_ignore_ascii_case("ilike") =>
            {
                let ci = w.eq_ignore_ascii_case("ilike");
                (
                    Op::Like {
                        case_insensitive: ci,
                    },
                    vec![literal(it.next())?],
                )
            }
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("is") => {
                let negated = word(&it.peek(), "not");
                if negated {
                    it.next();
                }
                if !word(&it.peek(), "null") {
                    return Err(bad("expected NULL after IS"));
                }
                it.next();
                (Op::IsNull { negated }, Vec::new())
            }
            Some(Tok::Ident(w))
                if w.eq_ignore_ascii_case("in") || w.eq_ignore_ascii_case("not") =>
            {
                let negated = w.eq_ignore_ascii_case("not");
                if negated
                    && !matches!(it.next(), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("in"))
                {
                    return Err(bad("expected IN after NOT"));
                }
                if it.next() != Some(Tok::LParen) {
                    return Err(bad("expected '(' after IN"));
                }
                let mut values = Vec::new();
                loop {
                    if values.len() >= MAX_LIST_VALUES {
                        return Err(bad(format!(
                            "an IN list holds at most {MAX_LIST_VALUES} values"
                        )));
                    }
                    values.push(literal(it.next())?);
                    match it.next() {
                        Some(Tok::Comma) => continue,
                        Some(Tok::RParen) => break,
                        _ => return Err(bad("expected ',' or ')' in the IN list")),
                    }
                }
                (Op::In { negated }, values)
            }
            other => {
                return Err(bad(format!(
                    "expected a comparator after {ident}, found {other:?}"
                )));
            }
        };
        clauses.push(Clause { entity, op, values });
        if clauses.len() > MAX_CONDITIONS {
            return Err(bad(format!(
                "the filter has more than {MAX_CONDITIONS} clauses"
            )));
        }
        match it.next() {
            None => break,
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("and") => continue,
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("or") => {
                return Err(bad(
                    "Invalid clause(s) in filter string: OR is not supported; join conditions with AND",
                ));
            }
            Some(other) => return Err(bad(format!("expected AND, found {other:?}"))),
        }
    }
    Ok(clauses)
}

fn expect_num(entity: &Entity, values: &[Literal]) -> Result<(), MlflowError> {
    if values.iter().all(|v| matches!(v, Literal::Num(_))) {
        Ok(())
    } else {
        Err(bad(format!("Expected numeric value type for {entity:?}")))
    }
}

fn expect_str(entity: &Entity, values: &[Literal]) -> Result<(), MlflowError> {
    if values.iter().all(|v| matches!(v, Literal::Str(_))) {
        Ok(())
    } else {
        Err(bad(format!(
            "Expected a quoted string value for {entity:?}"
        )))
    }
}

pub fn build_clause(field: Field, op: &Op, values: Vec<Literal>) -> Expr {
    match op {
        Op::Cmp(op) => Expr::Compare {
            field,
            op: *op,
            value: values.into_iter().next().unwrap_or(Literal::Null),
        },
        Op::Like { case_insensitive } => Expr::Like {
            field,
            pattern: match values.into_iter().next() {
                Some(Literal::Str(s)) => s,
                _ => String::new(),
            },
            case_insensitive: *case_insensitive,
            negated: false,
        },
        Op::In { negated } => Expr::In {
            field,
            values,
            negated: *negated,
        },
        Op::IsNull { negated } => Expr::IsNull {
            field,
            negated: *negated,
        },
    }
}

/// MLflow's run statuses onto labbook's: a crashed run is FAILED to MLflow.
fn status_values(values: &[Literal]) -> Result<Vec<Literal>, MlflowError> {
    let mut out = Vec::new();
    for v in values {
        let Literal::Str(s) = v else {
            return Err(bad("status values are strings such as 'FINISHED'"));
        };
        match s.to_ascii_uppercase().as_str() {
            "RUNNING" => out.push(Literal::Str("running".into())),
            "FINISHED" => out.push(Literal::Str("finished".into())),
            "KILLED" => out.push(Literal::Str("killed".into())),
            "FAILED" => {
                out.push(Literal::Str("failed".into()));
                out.push(Literal::Str("crashed".into()));
            }
            "SCHEDULED" => out.push(Literal::Str("scheduled".into())),
            other => {
                return Err(bad(format!(
                    "Invalid status {other:?}; use RUNNING, SCHEDULED, FINISHED, FAILED or KILLED"
                )));
            }
        }
    }
    Ok(out)
}

fn run_field(entity: &Entity) -> Result<Field, MlflowError> {
    Ok(match entity {
        Entity::Metric(k) => Field::Metric(k.clone(), Agg::Last),
        Entity::Param(k) => Field::Param(k.clone()),
        Entity::Tag(k) => match k.as_str() {
            "mlflow.runName" => Field::Attr(Attr::Name),
            "mlflow.note.content" => Field::Attr(Attr::Notes),
            _ => Field::Tag(k.clone()),
        },
        Entity::Dataset(a) => Field::Dataset(match a.as_str() {
            "name" => DatasetAttr::Name,
            "digest" => DatasetAttr::Digest,
            "context" => DatasetAttr::Context,
            other => {
                return Err(bad(format!(
                    "Invalid dataset attribute '{other}'; use name, digest or context"
                )));
            }
        }),
        Entity::Attribute(a) => match a.as_str() {
            "run_id" | "run_uuid" | "id" => Field::Attr(Attr::Id),
            "run_name" | "name" => Field::Attr(Attr::Name),
            "status" => Field::Attr(Attr::Status),
            "start_time" | "created" => Field::Attr(Attr::Created),
            "end_time" => Field::Attr(Attr::Ended),
            "user_id" => Field::Tag("mlflow.user".into()),
            "experiment_id" => Field::Attr(Attr::Project),
            other => {
                return Err(bad(format!(
                    "Invalid attribute key '{other}' specified. Valid keys are run_id, run_name, status, start_time, end_time, user_id"
                )));
            }
        },
    })
}

/// A run filter as one labbook expression (`None` when empty).
pub fn run_filter(src: &str) -> Result<Option<Expr>, MlflowError> {
    let mut all = Vec::new();
    for clause in parse(src)? {
        let field = run_field(&clause.entity)?;
        let mut values = clause.values;
        match (&clause.entity, &field) {
            (Entity::Metric(_), _) if !matches!(clause.op, Op::IsNull { .. }) => {
                expect_num(&clause.entity, &values)?;
            }
            (_, Field::Attr(Attr::Created | Attr::Ended)) => {
                expect_num(&clause.entity, &values)?;
            }
            (Entity::Attribute(a), _) if a == "experiment_id" => {
                return Err(bad(
                    "filter runs by experiment with experiment_ids, not in the filter",
                ));
            }
            (_, Field::Attr(Attr::Status)) => {
                values = status_values(&values)?;
                if let Op::Like { case_insensitive } = clause.op {
                    let pattern = match values.first() {
                        Some(Literal::Str(s)) => s.clone(),
                        _ => String::new(),
                    };
                    let next = Expr::Like {
                        field,
                        pattern,
                        case_insensitive,
                        negated: false,
                    };
                    all.push(next);
                    continue;
                }
                let negated = matches!(clause.op, Op::Cmp(CmpOp::Ne) | Op::In { negated: true });
                if matches!(clause.op, Op::Cmp(CmpOp::Eq | CmpOp::Ne) | Op::In { .. }) {
                    all.push(Expr::In {
                        field,
                        values,
                        negated,
                    });
                    continue;
                }
                return Err(bad("status supports =, !=, IN, NOT IN and LIKE"));
            }
            (_, _) if !matches!(clause.op, Op::IsNull { .. }) => {
                expect_str(&clause.entity, &values)?;
            }
            _ => {}
        }
        all.push(build_clause(field, &clause.op, values));
    }
    Ok(conjunction(all))
}

/// MLflow filters are `and`-joined clauses: one flat conjunction (`None`
/// for none), however many there are.
pub fn conjunction(clauses: Vec<Expr>) -> Option<Expr> {
    (!clauses.is_empty()).then(|| Expr::all(clauses))
}

/// An experiment filter: `name`, `tags.KEY`, `creation_time`,
/// `last_update_time`. The experiment is evaluated as a labbook run view
/// would be: name → `name`, creation → `created`, last update → `ended`.
pub fn experiment_filter(src: &str) -> Result<Option<Expr>, MlflowError> {
    let mut all = Vec::new();
    for clause in parse(src)? {
        let field = match &clause.entity {
            Entity::Attribute(a) => match a.as_str() {
                "name" => Field::Attr(Attr::Name),
                "experiment_id" => Field::Attr(Attr::Id),
                "creation_time" => Field::Attr(Attr::Created),
                "last_update_time" => Field::Attr(Attr::Ended),
                other => {
                    return Err(bad(format!(
                        "Invalid attribute key '{other}' specified. Valid keys are name, creation_time, last_update_time"
                    )));
                }
            },
            Entity::Tag(k) => Field::Tag(k.clone()),
            other => return Err(bad(format!("experiments cannot be filtered by {other:?}"))),
        };
        all.push(build_clause(field, &clause.op, clause.values));
    }
    Ok(conjunction(all))
}

/// `order_by` entries such as `metrics.acc DESC` or `attributes.start_time`.
pub fn order_by(
    entries: &[String],
    field_of: impl Fn(&Entity) -> Result<Field, MlflowError>,
) -> Result<Vec<SortKey>, MlflowError> {
    let mut keys = Vec::new();
    for entry in entries {
        let toks = tokens(entry)
            .map_err(|e| bad(format!("Invalid order_by clause '{entry}': {}", e.message)))?;
        let mut it = toks.into_iter();
        let ident = match it.next() {
            Some(Tok::Ident(s)) => s,
            _ => return Err(bad(format!("Invalid order_by clause '{entry}'"))),
        };
        let descending = match it.next() {
            None => false,
            Some(Tok::Ident(d)) if d.eq_ignore_ascii_case("asc") => false,
            Some(Tok::Ident(d)) if d.eq_ignore_ascii_case("desc") => true,
            _ => return Err(bad(format!("Invalid order_by clause '{entry}'"))),
        };
        if it.next().is_some() {
            return Err(bad(format!("Invalid order_by clause '{entry}'")));
        }
        keys.push(SortKey {
            field: field_of(&entity(&ident)?)?,
            descending,
        });
    }
    Ok(keys)
}

pub fn run_order_field(entity: &Entity) -> Result<Field, MlflowError> {
    run_field(entity)
}

pub fn experiment_order_field(entity: &Entity) -> Result<Field, MlflowError> {
    match entity {
        Entity::Attribute(a) => match a.as_str() {
            "name" => Ok(Field::Attr(Attr::Name)),
            "experiment_id" => Ok(Field::Attr(Attr::Id)),
            "creation_time" => Ok(Field::Attr(Attr::Created)),
            "last_update_time" => Ok(Field::Attr(Attr::Ended)),
            other => Err(bad(format!("Invalid order_by key '{other}'"))),
        },
        other => Err(bad(format!("experiments cannot be ordered by {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::Index;

    proptest! {
        #[test]
        fn any_text_parses_or_is_a_4xx(src in ".{0,120}") {
            for result in [run_filter(&src).map(|_| ()), experiment_filter(&src).map(|_| ())] {
                if let Err(e) = result {
                    prop_assert!(e.status.is_client_error());
                }
            }
            if let Err(e) = order_by(std::slice::from_ref(&src), run_order_field) {
                prop_assert!(e.status.is_client_error());
            }
        }

        #[test]
        fn well_formed_clauses_always_translate(
            keys in proptest::collection::vec("[a-z][a-z0-9_/.-]{0,12}", 1..5),
            ops in proptest::collection::vec(prop::sample::select(vec!["=", "!=", "<", "<=", ">", ">="]), 5),
            numbers in proptest::collection::vec(-1e9f64..1e9, 5),
        ) {
            let clauses: Vec<String> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| format!("metrics.`{k}` {} {}", ops[i], numbers[i]))
                .collect();
            let src = clauses.join(" AND ");
            let parsed = parse(&src).map_err(|e| TestCaseError::fail(e.message))?;
            prop_assert_eq!(parsed.len(), keys.len());
            prop_assert!(run_filter(&src).is_ok_and(|expr| expr.is_some()));
        }
    }

    #[test]
    fn parses_mlflow_filters() {
        let c =
            parse("metrics.acc > 0.9 and params.lr = '0.01' AND tags.`my tag` LIKE 'a%'").unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].entity, Entity::Metric("acc".into()));
        assert_eq!(c[2].entity, Entity::Tag("my tag".into()));
        let c =
            parse("tags.mlflow.runName IN ('a', 'b') and attributes.status != 'FAILED'").unwrap();
        assert_eq!(c[0].entity, Entity::Tag("mlflow.runName".into()));
        assert_eq!(c[0].values.len(), 2);
        let c = parse("metrics.\"val loss\" < -1.5e-3 and tags.x IS NOT NULL").unwrap();
        assert_eq!(c[0].entity, Entity::Metric("val loss".into()));
        assert_eq!(c[0].values, vec![Literal::Num(-1.5e-3)]);
        assert_eq!(c[1].op, Op::IsNull { negated: true });
        assert!(parse("metrics.a > 1 or metrics.b > 2").is_err());
        assert!(parse("foo.bar = 'x'").is_err());
        assert!(run_filter("metrics.acc > 'x'").is_err());
        assert!(run_filter("params.lr = 0.1").is_err());
        assert!(
            run_filter("attributes.status = 'FINISHED'")
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn parses_order_by() {
        let keys = order_by(
            &["metrics.acc DESC".into(), "attributes.start_time".into()],
            run_order_field,
        )
        .unwrap();
        assert!(keys[0].descending);
        assert_eq!(keys[1].field, Field::Attr(Attr::Created));
        assert!(order_by(&["metrics.acc sideways".into()], run_order_field).is_err());
    }

    // ------------------------------------------------------------ fuzz targets on stable
    //
    // The query and request fuzz targets' own checks (fuzz/checks/), which
    // `make fuzz` runs under libFuzzer on nightly, run here on stable with
    // structure-aware generators: queries from the query language's grammar
    // (labbook-core's query/tests/grammar.rs) against a real store, and
    // requests to every endpoint of the real router with bodies built from
    // that endpoint's fields, well-typed or hostile. Seeds and any local
    // corpus replay too; `make test-fuzz` runs the generators for a time.

    mod query_target {
        include!("../../../../fuzz/checks/query_parser.rs");
    }

    mod request_target {
        use crate as labbook_server;
        include!("../../../../fuzz/checks/mlflow_request.rs");
    }

    // The core crate's own tests use all of the grammar; these only its
    // generators.
    #[allow(dead_code)]
    mod grammar {
        include!("../../../labbook-core/src/query/tests/grammar.rs");
    }

    mod budget {
        include!("../../../../fuzz/checks/budget.rs");
    }

    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    use serde_json::{Value, json};

    /// `test` on `cases` values (PROPTEST_CASES, default 256, when `None`),
    /// on a fixed seed or a random one.
    fn run_cases<S: Strategy>(
        strategy: S,
        cases: Option<u32>,
        test: impl Fn(S::Value) -> Result<(), TestCaseError>,
    ) {
        let mut config = Config {
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner = match cases {
            Some(cases) => {
                config.cases = cases;
                TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
            }
            None => TestRunner::new(config),
        };
        if let Err(e) = runner.run(&strategy, test) {
            panic!("{e}");
        }
    }

    fn fuzz_inputs(target: &str) -> Vec<(String, Vec<u8>)> {
        let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
        let mut out = Vec::new();
        for dir in ["seeds", "corpus"] {
            let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
        out
    }

    /// The query target's input: `FILTER\nSORT`.
    fn query_input(filter: &grammar::Query, sort: &grammar::Query) -> Vec<u8> {
        format!("{}\n{}", filter.text(), sort.text()).into_bytes()
    }

    fn queries() -> impl Strategy<Value = (grammar::Query, grammar::Query)> {
        (grammar::filter(), grammar::sort())
    }

    #[test]
    fn generated_queries_run_against_a_store() {
        let fixture = query_target::Fixture::open();
        run_cases(queries(), None, |(filter, sort)| {
            let listed = query_target::check(&fixture, &query_input(&filter, &sort));
            // The grammar's own filters parse, so they reach the store.
            prop_assert!(!filter.valid || listed.is_some(), "{:?}", filter.text());
            Ok(())
        });
    }

    #[test]
    fn query_fuzz_seeds_replay_against_a_store() {
        let fixture = query_target::Fixture::open();
        let inputs = fuzz_inputs("query_parser");
        assert!(inputs.len() >= 5);
        for (name, bytes) in inputs {
            let listed = query_target::check(&fixture, &bytes);
            assert!(listed.is_some() || name.contains("corpus"), "{name}");
        }
    }

    #[test]
    #[ignore = "make test-fuzz runs it for LABBOOK_FUZZ_SECONDS"]
    fn fuzz_budget_query_parser() {
        let fixture = query_target::Fixture::open();
        budget::fuzz_for(
            "query_parser",
            queries(),
            |(filter, sort)| query_input(filter, sort),
            |(filter, sort)| {
                query_target::check(&fixture, &query_input(&filter, &sort));
                Ok(())
            },
        );
    }

    // ---------------------------------------------------------------- requests

    /// What a field of a request holds.
    #[derive(Debug, Clone, Copy)]
    enum Ty {
        Str,
        /// An int64: a number, or a string of one.
        Int,
        /// A double: a number, or "NaN", "Infinity", "-Infinity".
        Float,
        Bool,
        /// `[{"key", "value"}]`.
        KeyValues,
        /// `[{"key", "value", "timestamp", "step"}]`.
        Metrics,
        Strings,
        /// An MLflow search filter.
        MlflowFilter,
        /// A labbook query (the grammar's) and sort.
        Query,
        Sort,
        /// `[{"dataset": {…}, "tags": […]}]`.
        Datasets,
        /// labbook's `{"key": {"steps", "ts_ms", "values"}}`.
        Series,
        Object,
    }

    use Ty::{
        Bool, Datasets, Float, Int, KeyValues, Metrics, MlflowFilter, Object, Query, Series, Sort,
        Str, Strings,
    };

    /// Each endpoint's fields (ENDPOINTS' order), as the handlers read them.
    const FIELDS: &[&[(&str, Ty)]] = &[
        &[
            ("name", Str),
            ("artifact_location", Str),
            ("tags", KeyValues),
        ],
        &[("experiment_id", Int)],
        &[("experiment_name", Str)],
        &[
            ("filter", MlflowFilter),
            ("max_results", Int),
            ("order_by", Strings),
            ("page_token", Str),
            ("view_type", Str),
        ],
        &[("experiment_id", Int), ("new_name", Str)],
        &[("experiment_id", Int), ("key", Str), ("value", Str)],
        &[
            ("experiment_id", Int),
            ("user_id", Str),
            ("start_time", Int),
            ("tags", KeyValues),
            ("run_name", Str),
        ],
        &[("run_id", Str), ("run_uuid", Str)],
        &[
            ("run_id", Str),
            ("status", Str),
            ("end_time", Int),
            ("run_name", Str),
        ],
        &[
            ("run_id", Str),
            ("key", Str),
            ("value", Float),
            ("timestamp", Int),
            ("step", Int),
            ("model_id", Str),
        ],
        &[("run_id", Str), ("key", Str), ("value", Str)],
        &[
            ("run_id", Str),
            ("metrics", Metrics),
            ("params", KeyValues),
            ("tags", KeyValues),
        ],
        &[("run_id", Str), ("key", Str), ("value", Str)],
        &[("run_id", Str), ("key", Str)],
        &[
            ("experiment_ids", Strings),
            ("filter", MlflowFilter),
            ("run_view_type", Str),
            ("max_results", Int),
            ("order_by", Strings),
            ("page_token", Str),
        ],
        &[("run_id", Str), ("datasets", Datasets)],
        &[("run_id", Str), ("models", Object)],
        &[
            ("run_id", Str),
            ("metric_key", Str),
            ("max_results", Int),
            ("page_token", Str),
        ],
        &[
            ("run_ids", Strings),
            ("metric_key", Str),
            ("start_step", Int),
            ("end_step", Int),
            ("max_results", Int),
        ],
        &[("run_id", Str), ("path", Str), ("page_token", Str)],
        &[("name", Str), ("tags", KeyValues), ("description", Str)],
        &[
            ("filter", MlflowFilter),
            ("max_results", Int),
            ("order_by", Strings),
            ("page_token", Str),
        ],
        &[
            ("name", Str),
            ("source", Str),
            ("run_id", Str),
            ("tags", KeyValues),
            ("description", Str),
            ("model_id", Str),
        ],
        &[
            ("filter", MlflowFilter),
            ("max_results", Int),
            ("order_by", Strings),
            ("page_token", Str),
        ],
        &[
            ("experiment_id", Int),
            ("name", Str),
            ("model_type", Str),
            ("source_run_id", Str),
            ("params", KeyValues),
            ("tags", KeyValues),
        ],
        &[
            ("experiment_ids", Strings),
            ("filter", MlflowFilter),
            ("max_results", Int),
            ("order_by", Object),
            ("page_token", Str),
        ],
        &[("path", Str)],
        &[
            ("project", Str),
            ("id", Str),
            ("name", Str),
            ("config", Object),
            ("resume", Str),
            ("tags", Strings),
            ("group", Str),
            ("notes", Str),
            ("created_ms", Int),
            ("pid", Int),
        ],
        &[
            ("batch_id", Str),
            ("series", Series),
            ("summary", Object),
            ("seal", Bool),
        ],
        &[
            ("filter", Query),
            ("sort", Sort),
            ("limit", Int),
            ("offset", Int),
            ("deleted", Str),
        ],
        &[
            ("runs", Str),
            ("keys", Str),
            ("buckets", Int),
            ("lo", Int),
            ("hi", Int),
            ("after", Int),
            ("ts", Str),
        ],
        &[("name", Str)],
        &[("name", Str), ("key", Str), ("value", Str)],
        &[("name", Str), ("version", Int)],
        &[
            ("name", Str),
            ("version", Int),
            ("stage", Str),
            ("archive_existing_versions", Bool),
        ],
        &[("name", Str), ("alias", Str), ("version", Int)],
        &[("run_id", Str), ("model_json", Str)],
    ];

    fn text() -> BoxedStrategy<String> {
        prop_oneof![
            6 => prop::sample::select(&[
                "RUN", "EXP", "fuzz", "loss", "lr", "model-a", "m", "FINISHED", "FAILED",
                "KILLED", "RUNNING", "Production", "Archived", "champion", "1", "0", "",
                "mlflow.runName", "password", "../../etc/passwd", "..%2F..%2Fetc", "a/b",
                "NaN", "Infinity", "runs:/RUN/model", "file:///etc", "allow", "must",
            ][..]).prop_map(str::to_string),
            2 => "[ -~é日\u{0}]{0,16}",
            1 => (1usize..5_000).prop_map(|n| "a".repeat(n)),
        ]
        .boxed()
    }

    fn int() -> BoxedStrategy<Value> {
        prop_oneof![
            4 => (-5i64..50).prop_map(Value::from),
            2 => (-5i64..50).prop_map(|n| Value::from(n.to_string())),
            1 => prop::sample::select(&[i64::MAX, i64::MIN, 1 << 53, -1][..]).prop_map(Value::from),
            1 => Just(json!(u64::MAX)),
            1 => prop::sample::select(&[1.5f64, 1e20, -1e300, 5e-324][..]).prop_map(Value::from),
            1 => prop::sample::select(&["1e3", "12abc", "", "-0", "9223372036854775808"][..]).prop_map(Value::from),
        ]
        .boxed()
    }

    fn float() -> BoxedStrategy<Value> {
        prop_oneof![
            4 => (-1e3f64..1e3).prop_map(Value::from),
            2 => prop::sample::select(&["NaN", "Infinity", "-Infinity", "nan", "inf", "1.5", "x"][..]).prop_map(Value::from),
            1 => prop::sample::select(&[f64::MAX, f64::MIN, 5e-324, -0.0][..]).prop_map(Value::from),
            1 => (-5i64..5).prop_map(Value::from),
        ]
        .boxed()
    }

    /// Any JSON, two levels deep.
    fn any_json() -> BoxedStrategy<Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            float(),
            int(),
            text().prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(text(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
    }

    fn key_values() -> BoxedStrategy<Value> {
        prop::collection::vec((text(), text()), 0..4)
            .prop_map(|kv| {
                Value::from(
                    kv.into_iter()
                        .map(|(k, v)| json!({"key": k, "value": v}))
                        .collect::<Vec<_>>(),
                )
            })
            .boxed()
    }

    fn mlflow_filter() -> BoxedStrategy<String> {
        let clause = prop_oneof![
            (
                text(),
                prop::sample::select(&["=", "!=", "<", "<=", ">", ">="][..]),
                float()
            )
                .prop_map(|(k, op, v)| format!("metrics.`{k}` {op} {v}")),
            (
                text(),
                prop::sample::select(&["=", "!=", "LIKE", "ILIKE"][..]),
                text()
            )
                .prop_map(|(k, op, v)| format!("params.\"{k}\" {op} '{v}'")),
            (text(), text()).prop_map(|(k, v)| format!("tags.`{k}` IN ('{v}', 'x')")),
            text().prop_map(|v| format!("attributes.status = '{v}'")),
            text().prop_map(|v| format!("attributes.run_name ILIKE '%{v}%'")),
            text().prop_map(|v| format!("name LIKE '{v}%'")),
            Just("tags.t IS NOT NULL".to_string()),
            Just("attributes.start_time > 0".to_string()),
        ];
        (
            prop::collection::vec(clause, 1..4),
            any::<Index>(),
            any::<bool>(),
        )
            .prop_map(|(clauses, cut, whole)| {
                let text = clauses.join(" AND ");
                if whole {
                    text
                } else {
                    text.chars()
                        .take(cut.index(text.chars().count() + 1))
                        .collect()
                }
            })
            .boxed()
    }

    fn typed(ty: Ty) -> BoxedStrategy<Value> {
        match ty {
            Str => text().prop_map(Value::from).boxed(),
            Int => int(),
            Float => float(),
            Bool => any::<bool>().prop_map(Value::from).boxed(),
            KeyValues => key_values(),
            Metrics => prop::collection::vec((text(), float(), int(), int()), 0..5)
                .prop_map(|ms| {
                    Value::from(
                        ms.into_iter()
                            .map(|(k, v, t, s)| json!({"key": k, "value": v, "timestamp": t, "step": s}))
                            .collect::<Vec<_>>(),
                    )
                })
                .boxed(),
            Strings => prop::collection::vec(text(), 0..4).prop_map(Value::from).boxed(),
            MlflowFilter => mlflow_filter().prop_map(Value::from).boxed(),
            Query => grammar::filter().prop_map(|q| Value::from(q.text())).boxed(),
            Sort => grammar::sort().prop_map(|q| Value::from(q.text())).boxed(),
            Datasets => prop::collection::vec((text(), text(), text(), key_values()), 0..3)
                .prop_map(|ds| {
                    Value::from(
                        ds.into_iter()
                            .map(|(name, digest, source, tags)| {
                                json!({"dataset": {"name": name, "digest": digest,
                                    "source_type": "local", "source": source}, "tags": tags})
                            })
                            .collect::<Vec<_>>(),
                    )
                })
                .boxed(),
            Series => (text(), prop::collection::vec((int(), int(), float()), 0..6))
                .prop_map(|(key, points)| {
                    let (steps, rest): (Vec<Value>, Vec<(Value, Value)>) =
                        points.into_iter().map(|(s, t, v)| (s, (t, v))).unzip();
                    let (ts, values): (Vec<Value>, Vec<Value>) = rest.into_iter().unzip();
                    json!({ key: {"steps": steps, "ts_ms": ts, "values": values} })
                })
                .boxed(),
            Object => any_json(),
        }
    }

    /// One request: the endpoint's index and its body or query string.
    #[derive(Debug, Clone)]
    struct Req {
        endpoint: usize,
        fields: Vec<(String, Value)>,
        cut: Option<Index>,
    }

    impl Req {
        fn input(&self) -> Vec<u8> {
            let (method, _) = &request_target::ENDPOINTS[self.endpoint];
            let text = if *method == axum::http::Method::GET {
                let mut pairs = Vec::new();
                for (k, v) in &self.fields {
                    let values = match v {
                        Value::Array(items) => items.clone(),
                        other => vec![other.clone()],
                    };
                    for v in values {
                        let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                        pairs.push(format!("{k}={v}"));
                    }
                }
                pairs.join("&")
            } else {
                Value::Object(self.fields.iter().cloned().collect()).to_string()
            };
            let text: String = match self.cut {
                Some(cut) => text
                    .chars()
                    .take(cut.index(text.chars().count() + 1))
                    .collect(),
                None => text,
            };
            [vec![self.endpoint as u8], text.into_bytes()].concat()
        }
    }

    /// A value a well-behaved client sends for a field of this name, or
    /// `None` to leave an optional field out: requests made only of these
    /// get past validation into the handlers.
    fn plausible(name: &str, ty: Ty) -> Option<BoxedStrategy<Value>> {
        let one = |v: Value| Some(Just(v).boxed());
        let pick = |vs: &'static [&'static str]| {
            Some(prop::sample::select(vs).prop_map(Value::from).boxed())
        };
        match (name, ty) {
            ("run_id" | "run_uuid" | "source_run_id" | "runs", _) => one(json!("RUN")),
            ("run_ids", _) => one(json!(["RUN"])),
            ("experiment_id", _) => one(json!("EXP")),
            ("experiment_ids", _) => one(json!(["EXP"])),
            ("key" | "metric_key" | "keys", _) => pick(&["loss", "lr", "t"]),
            ("name", _) => pick(&["model-a", "fuzz"]),
            ("new_name" | "run_name" | "project" | "group" | "notes" | "description", _) => {
                pick(&["fuzz", "b"])
            }
            ("source", _) => one(json!("runs:/RUN/model")),
            ("model_json", _) => one(json!(r#"{"artifact_path": "model", "flavors": {}}"#)),
            ("status", _) => pick(&["RUNNING", "FINISHED", "FAILED", "KILLED"]),
            ("stage", _) => pick(&["Production", "Staging", "Archived", "None"]),
            ("alias", _) => pick(&["champion", "b"]),
            ("resume", _) => pick(&["allow", "never"]),
            ("version", _) => pick(&["1", "2"]),
            ("max_results" | "limit" | "buckets", _) => {
                Some((1i64..20).prop_map(Value::from).boxed())
            }
            ("start_step" | "lo", _) => one(json!(0)),
            ("end_step" | "hi", _) => one(json!(100)),
            ("step" | "offset", _) => Some((0i64..50).prop_map(Value::from).boxed()),
            ("timestamp" | "start_time" | "end_time", _) => one(json!(1_700_000_000_000i64)),
            (_, Float) => Some((-1e3f64..1e3).prop_map(Value::from).boxed()),
            ("value", Str) => pick(&["0.1", "b"]),
            (_, KeyValues) => one(json!([{"key": "t", "value": "v"}])),
            (_, Metrics) => Some(
                (0i64..1_000, -1e3f64..1e3)
                    .prop_map(|(step, value)| {
                        json!([{"key": "loss", "value": value, "timestamp": 1, "step": step}])
                    })
                    .boxed(),
            ),
            (_, Series) => Some(
                (0i64..1_000)
                    .prop_map(|step| {
                        json!({"loss": {"steps": [step], "ts_ms": [1], "values": [0.5]}})
                    })
                    .boxed(),
            ),
            (_, Query) => pick(&["metrics.loss > 0", "config.lr = 0.1", "name ~ 'f'"]),
            (_, Sort) => pick(&["-metrics.loss", "created"]),
            (_, Bool | Datasets) => Some(typed(ty)),
            _ => None,
        }
    }

    fn request() -> impl Strategy<Value = Req> {
        (0..FIELDS.len(), prop::bool::weighted(0.3))
            .prop_flat_map(|(endpoint, well_behaved)| {
                let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = FIELDS[endpoint]
                    .iter()
                    .map(|&(name, ty)| {
                        if well_behaved {
                            return match plausible(name, ty) {
                                Some(value) => {
                                    value.prop_map(move |v| Some((name.to_string(), v))).boxed()
                                }
                                None => Just(None).boxed(),
                            };
                        }
                        prop_oneof![
                            6 => typed(ty).prop_map(move |v| Some((name.to_string(), v))),
                            1 => any_json().prop_map(move |v| Some((name.to_string(), v))),
                            1 => Just(None),
                        ]
                        .boxed()
                    })
                    .collect();
                // A well-behaved request has no extra field and is never cut.
                let odds = if well_behaved { 1e-9 } else { 0.1 };
                let extra = prop::option::weighted(odds, (text(), any_json()));
                let cut = prop::option::weighted(odds, any::<Index>());
                (Just(endpoint), fields, extra, cut)
            })
            .prop_map(|(endpoint, fields, extra, cut)| Req {
                endpoint,
                fields: fields.into_iter().flatten().chain(extra).collect(),
                cut,
            })
    }

    #[test]
    fn endpoint_fields_follow_the_router() {
        assert_eq!(FIELDS.len(), request_target::ENDPOINTS.len());
    }

    #[test]
    fn generated_requests_never_get_a_5xx() {
        let server = request_target::Server::open();
        run_cases(request(), None, |req| {
            request_target::check(&server, &req.input());
            Ok(())
        });
    }

    /// The coverage the request generator reaches, on a fixed seed: every
    /// endpoint answers some requests with a success (the body got past
    /// decoding and validation into the handler; the well-behaved requests
    /// of `plausible` values see to that) and refuses others with a 4xx
    /// (`--nocapture` shows the table).
    #[test]
    fn generated_requests_reach_every_endpoint_both_ways() {
        const CASES: u32 = 3_000;
        let server = request_target::Server::open();
        let counts = std::cell::RefCell::new(vec![[0u32; 2]; FIELDS.len()]);
        run_cases(request(), Some(CASES), |req| {
            if let Some((endpoint, status)) = request_target::check(&server, &req.input()) {
                counts.borrow_mut()[endpoint][usize::from(status >= 300)] += 1;
            }
            Ok(())
        });
        let counts = counts.into_inner();
        let mut one_way = Vec::new();
        for ((method, path), [ok, refused]) in request_target::ENDPOINTS.iter().zip(&counts) {
            eprintln!("{method:<5}{path:<56} {ok:>5} 2xx {refused:>5} 4xx");
            if *ok == 0 || *refused == 0 {
                one_way.push(*path);
            }
        }
        assert!(one_way.is_empty(), "answered only one way: {one_way:?}");
    }

    #[test]
    fn request_fuzz_seeds_replay() {
        let server = request_target::Server::open();
        let inputs = fuzz_inputs("mlflow_request");
        assert!(inputs.len() >= 10);
        for (_, bytes) in inputs {
            request_target::check(&server, &bytes);
        }
    }

    #[test]
    #[ignore = "make test-fuzz runs it for LABBOOK_FUZZ_SECONDS"]
    fn fuzz_budget_mlflow_request() {
        let server = request_target::Server::open();
        budget::fuzz_for("mlflow_request", request(), Req::input, |req| {
            request_target::check(&server, &req.input());
            Ok(())
        });
    }
}
