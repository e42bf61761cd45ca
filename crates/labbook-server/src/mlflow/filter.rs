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
}
