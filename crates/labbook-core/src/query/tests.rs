use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::config::config_from_json;
use crate::metric::{Point, SeriesColumns, SeriesSummary};
use crate::run::RunStatus;

fn run(id: &str, config: serde_json::Value, loss: &[f64], tags: &[&str]) -> RunRecord {
    let mut series = SeriesColumns::default();
    for (i, v) in loss.iter().enumerate() {
        series.push(Point {
            step: i as i64,
            ts_ms: i as i64,
            value: *v,
        });
    }
    let mut metrics = BTreeMap::new();
    if let Some(s) = SeriesSummary::of(&series) {
        metrics.insert("val/loss".to_string(), s);
    }
    RunRecord {
        id: id.into(),
        project: "mnist".into(),
        name: format!("run-{id}"),
        group: None,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        notes: Some("Does dropout help?".into()),
        status: RunStatus::Finished,
        created_ms: parse_datetime_ms("2026-11-20T10:00").unwrap(),
        ended_ms: Some(parse_datetime_ms("2026-11-20T10:01").unwrap()),
        heartbeat_ms: 0,
        host: None,
        pid: None,
        exit_code: Some(0),
        error: None,
        config: config_from_json(&config).unwrap(),
        metrics,
        summary: BTreeMap::new(),
        deleted_ms: None,
        project_id: 1,
        kv_tags: [("team".to_string(), format!("team-{id}"))].into(),
        inputs: vec![crate::DatasetInput {
            name: format!("data-{id}"),
            digest: "abc".into(),
            source_type: "local".into(),
            source: "/data".into(),
            schema: None,
            profile: None,
            tags: [("mlflow.data.context".to_string(), "training".to_string())].into(),
        }],
        outputs: Vec::new(),
        param_text: BTreeMap::new(),
        model_inputs: Vec::new(),
    }
}

fn hits(filter: &str, runs: &[RunRecord]) -> Vec<String> {
    let expr = parse_filter(filter).unwrap_or_else(|e| panic!("{e}"));
    runs.iter()
        .filter(|r| expr.matches(&RunView { run: r, now_ms: 0 }))
        .map(|r| r.id.clone())
        .collect()
}

fn sample() -> Vec<RunRecord> {
    vec![
        run(
            "a",
            json!({"lr": 0.1, "model": {"depth": 4}, "opt": "adam"}),
            &[1.0, 0.5, 0.4],
            &["baseline"],
        ),
        run(
            "b",
            json!({"lr": 0.001, "model": {"depth": 8}, "opt": "sgd"}),
            &[1.0, 0.2, 0.3],
            &[],
        ),
        run(
            "c",
            json!({"lr": 0.01, "odd key": 2}),
            &[],
            &["baseline", "x"],
        ),
    ]
}

#[test]
fn the_documented_examples_filter_as_described() {
    let runs = sample();
    assert_eq!(
        hits("config.lr > 0.005 and status = \"finished\"", &runs),
        ["a", "c"]
    );
    assert_eq!(hits("min(metrics.val/loss) < 0.3", &runs), ["b"]);
    assert_eq!(hits("metrics.val/loss < 0.35", &runs), ["b"]);
    assert_eq!(hits("tags contains \"baseline\"", &runs), ["a", "c"]);
    assert_eq!(hits("config.`odd key` in (1, 2)", &runs), ["c"]);
    assert_eq!(
        hits("not notes like \"%dropout%\"", &runs),
        Vec::<String>::new()
    );
    assert_eq!(hits("notes ilike '%DROPOUT%'", &runs), ["a", "b", "c"]);
    assert_eq!(
        hits("config.model.depth >= 8 or config.opt = 'adam'", &runs),
        ["a", "b"]
    );
    assert_eq!(
        hits("group is null and config.lr is not null", &runs),
        ["a", "b", "c"]
    );
    assert_eq!(
        hits(
            "created >= \"2026-11-20\" and created < \"2026-11-21\"",
            &runs
        ),
        ["a", "b", "c"]
    );
    assert_eq!(hits("duration = 60", &runs), ["a", "b", "c"]);
    assert_eq!(
        hits(
            "count(metrics.val/loss) = 3 and max(metrics.val/loss) <= 1",
            &runs
        ),
        ["a", "b"]
    );
    assert_eq!(hits("(config.opt != 'sgd')", &runs), ["a"]);
    assert_eq!(hits("config.opt not in ('sgd')", &runs), ["a"]);
}

#[test]
fn missing_fields_compare_false_both_ways() {
    let runs = sample();
    assert_eq!(hits("config.missing = 1", &runs), Vec::<String>::new());
    assert_eq!(hits("config.missing != 1", &runs), Vec::<String>::new());
    assert_eq!(hits("config.missing = null", &runs), ["a", "b", "c"]);
    assert_eq!(hits("config.opt > 1", &runs), Vec::<String>::new());
}

#[test]
fn nan_and_infinity_literals_parse() {
    let expr =
        parse_filter("metrics.loss = inf or metrics.loss > -inf or metrics.x = nan").unwrap();
    assert_eq!(expr.fields().len(), 3);
}

#[test]
fn bad_filters_say_where_and_what() {
    let cases = [
        ("config.lr >", "expected a value", 12),
        ("lr > 1", "unknown field \"lr\"; use config.lr", 1),
        (
            "config.lr > 1 config.x = 2",
            "join conditions with 'and'",
            15,
        ),
        ("config.lr = \"abc", "unterminated string", 13),
        ("status = finished", "quote strings", 10),
        ("min(config.lr) < 1", "apply to metrics.KEY", 5),
        ("config.lr ~ 1", "unexpected character '~'", 11),
        ("", "the filter is empty", 1),
        ("(config.lr = 1", "expected ')'", 15),
        ("config. = 1", "config. needs a key", 1),
    ];
    for (filter, message, column) in cases {
        let err = parse_filter(filter).unwrap_err();
        assert!(err.message.contains(message), "{filter:?}: {err}");
        assert_eq!(err.column, column, "{filter:?}: {err}");
        let text = err.to_string();
        assert!(!text.contains('\n'), "one line: {text}");
    }
}

#[test]
fn sort_orders_with_missing_last() {
    let runs = sample();
    let order = |spec: &str| {
        let keys = parse_sort(spec).unwrap();
        let mut sorted: Vec<&RunRecord> = runs.iter().collect();
        sorted.sort_by(|a, b| {
            compare_by(
                &keys,
                &RunView { run: a, now_ms: 0 },
                &RunView { run: b, now_ms: 0 },
            )
        });
        sorted.iter().map(|r| r.id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(order("metrics.val/loss"), ["b", "a", "c"]);
    assert_eq!(order("-metrics.val/loss"), ["a", "b", "c"]);
    assert_eq!(order("-config.lr"), ["a", "c", "b"]);
    assert_eq!(order("config.opt,id"), ["a", "b", "c"]);
    assert!(parse_sort("-").is_err());
    assert!(parse_sort("config.lr desc").is_err());
}

#[test]
fn like_handles_wildcards() {
    assert!(like_matches("train/loss", "train/%", false));
    assert!(like_matches("abc", "a_c", false));
    assert!(!like_matches("abc", "a_", false));
    assert!(like_matches("ABC", "%b%", true));
    assert!(like_matches("", "%", false));
    assert!(!like_matches("abc", "%d", false));
}

#[test]
fn dates_parse_as_utc() {
    assert_eq!(parse_datetime_ms("1970-01-02"), Some(86_400_000));
    assert_eq!(
        parse_datetime_ms("2000-03-01T00:00:01Z"),
        Some(951_868_801_000)
    );
    assert_eq!(parse_datetime_ms("2026-13-01"), None);
    assert_eq!(parse_datetime_ms("yesterday"), None);
    // Found by `make fuzz`: a huge year overflowed the arithmetic.
    assert_eq!(parse_datetime_ms("20799999920-1-9"), None);
    assert_eq!(parse_datetime_ms("-9223372036854775807-1-1"), None);
    assert_eq!(parse_datetime_ms("2026-01-01T1e300"), None);
    assert_eq!(
        parse_datetime_ms("9999-12-31T23:59:59"),
        Some(253_402_300_799_000)
    );
}

#[test]
fn fields_print_back_in_query_syntax() {
    for text in [
        "config.lr",
        "metrics.train/loss",
        "min(metrics.val/loss)",
        "config.`a key`",
        "status",
    ] {
        let keys = parse_sort(text).unwrap();
        assert_eq!(keys[0].field.to_string(), text);
    }
}

proptest! {
    #[test]
    fn the_parser_never_panics(input in ".{0,80}") {
        let _ = parse_filter(&input);
        let _ = parse_sort(&input);
    }

    #[test]
    fn numeric_comparisons_agree_with_f64(lr in -1e6f64..1e6, threshold in -1e6f64..1e6) {
        let r = run("p", json!({"lr": lr}), &[], &[]);
        let view = RunView { run: &r, now_ms: 0 };
        let expr = parse_filter(&format!("config.lr > {threshold:e}")).unwrap();
        prop_assert_eq!(expr.matches(&view), lr > threshold);
    }
}

#[test]
fn params_tags_and_datasets_are_fields() {
    let runs = [
        run("a", json!({"lr": 0.01, "opt": "adam"}), &[1.0], &[]),
        run("b", json!({"lr": 0.1}), &[1.0], &[]),
    ];
    // MLflow's params are strings: the server asks for Field::Param.
    let param_is = |key: &str, value: &str| Expr::Compare {
        field: Field::Param(key.into()),
        op: CmpOp::Eq,
        value: Literal::Str(value.into()),
    };
    let param_hits = |e: Expr| -> Vec<&str> {
        runs.iter()
            .filter(|r| e.matches(&RunView { run: r, now_ms: 0 }))
            .map(|r| r.id.as_str())
            .collect()
    };
    assert_eq!(param_hits(param_is("lr", "0.01")), ["a"]);
    assert_eq!(param_hits(param_is("opt", "adam")), ["a"]);
    assert_eq!(hits("tags.team = 'team-b'", &runs), ["b"]);
    assert_eq!(hits("datasets.name in ('data-a', 'x')", &runs), ["a"]);
    assert_eq!(hits("datasets.context = 'training'", &runs).len(), 2);
}

/// A hostile filter is refused with an error, never a stack overflow: the
/// parser bounds nesting, and `and`/`or` chains are flat however long.
#[test]
fn nesting_is_bounded_and_chains_are_flat() {
    let runs = sample();
    let deep = format!("{}config.lr > 0{}", "(".repeat(3000), ")".repeat(3000));
    let err = parse_filter(&deep).unwrap_err();
    assert!(err.to_string().contains("nests deeper than 64"), "{err}");
    let nots = format!("{}config.lr > 0", "not ".repeat(3000));
    assert!(
        parse_filter(&nots)
            .unwrap_err()
            .to_string()
            .contains("nests deeper")
    );
    // The limit itself is usable.
    let at_limit = format!("{}config.lr > 0{}", "(".repeat(64), ")".repeat(64));
    assert_eq!(hits(&at_limit, &runs), hits("config.lr > 0", &runs));

    // 1,000 conditions parse into one flat node and evaluate iteratively.
    let chain = vec!["config.lr > 0"; MAX_CONDITIONS].join(" and ");
    match parse_filter(&chain).unwrap() {
        Expr::And(all) => assert_eq!(all.len(), MAX_CONDITIONS),
        other => panic!("expected one flat And, got {other:?}"),
    }
    assert_eq!(hits(&chain, &runs), hits("config.lr > 0", &runs));
    let ors = vec!["config.lr = 12345"; 999].join(" or ") + " or config.lr > 0";
    assert_eq!(hits(&ors, &runs), hits("config.lr > 0", &runs));
    // 60,000 clauses (about 1 MB) are refused, not walked.
    let huge = vec!["config.lr > 0"; 60_000].join(" and ");
    let err = parse_filter(&huge).unwrap_err();
    assert!(
        err.to_string().contains("more than 1000 conditions"),
        "{err}"
    );
    let list = format!("id in ({})", vec!["'x'"; MAX_LIST_VALUES + 1].join(","));
    assert!(
        parse_filter(&list)
            .unwrap_err()
            .to_string()
            .contains("at most 10000 values")
    );
}

#[test]
fn parenthesized_chains_flatten() {
    let e =
        parse_filter("(config.lr > 0 and config.lr < 1) and (status = 'finished' and id = 'a')")
            .unwrap();
    match e {
        Expr::And(all) => assert_eq!(all.len(), 4),
        other => panic!("expected a flat And, got {other:?}"),
    }
}

// ---------------------------------------------------------------- the grammar's queries
//
// The stable stand-in for the query fuzz target (`make fuzz` runs it on
// nightly): queries generated from the grammar (`grammar.rs`), half of them
// edited into near-valid text, through the parser and the evaluator. The
// same queries run against a real store in labbook-server's
// mlflow/filter.rs tests.

mod grammar;

use grammar::Query;

fn matches_on(expr: &Expr, runs: &[RunRecord]) -> Vec<bool> {
    runs.iter()
        .map(|r| expr.matches(&RunView { run: r, now_ms: 0 }))
        .collect()
}

/// What any text must get: a filter that evaluates, or a one-line error
/// whose column lies inside the text (or just past its end).
fn parses_or_explains(text: &str, runs: &[RunRecord]) -> Result<Option<Expr>, TestCaseError> {
    match parse_filter(text) {
        Ok(expr) => {
            prop_assert!(!expr.fields().is_empty());
            matches_on(&expr, runs);
            Ok(Some(expr))
        }
        Err(e) => {
            prop_assert!(
                (1..=text.chars().count() + 1).contains(&e.column),
                "column {} of {:?}: {e}",
                e.column,
                text
            );
            prop_assert!(!e.to_string().contains('\n'), "one line: {e}");
            Ok(None)
        }
    }
}

fn check_filter(query: &Query, runs: &[RunRecord]) -> Result<Option<Expr>, TestCaseError> {
    let text = query.text();
    let expr = parses_or_explains(&text, runs)?;
    if query.valid {
        let Some(expr) = &expr else {
            return Err(TestCaseError::fail(format!(
                "the grammar's own query is refused: {text:?}: {}",
                parse_filter(&text).unwrap_err()
            )));
        };
        // The same query spelled otherwise parses to the same expression.
        let respelled = query.respelled();
        let again = parse_filter(&respelled)
            .map_err(|e| TestCaseError::fail(format!("{respelled:?}: {e}")))?;
        prop_assert_eq!(format!("{expr:?}"), format!("{again:?}"));
        // `not (…)` holds exactly where the filter does not.
        let negated = parse_filter(&format!("not ({text})"))
            .map_err(|e| TestCaseError::fail(format!("not ({text:?}): {e}")))?;
        let holds = matches_on(expr, runs);
        let not_holds: Vec<bool> = matches_on(&negated, runs).iter().map(|b| !b).collect();
        prop_assert_eq!(holds, not_holds);
    }
    Ok(expr)
}

proptest! {
    #[test]
    fn generated_filters_parse_or_explain(query in grammar::filter()) {
        check_filter(&query, &sample())?;
    }

    #[test]
    fn generated_filters_combine_as_and_and_or(a in grammar::filter(), b in grammar::filter()) {
        let runs = sample();
        let (Some(ea), Some(eb)) = (check_filter(&a, &runs)?, check_filter(&b, &runs)?) else {
            return Ok(());
        };
        let (ma, mb) = (matches_on(&ea, &runs), matches_on(&eb, &runs));
        let (ta, tb) = (a.text(), b.text());
        let and = parse_filter(&format!("({ta}) and ({tb})"));
        let or = parse_filter(&format!("({ta}) or ({tb})"));
        // Past the parser's bounds together (conditions, nesting) only.
        if let (Ok(and), Ok(or)) = (and, or) {
            let both: Vec<bool> = ma.iter().zip(&mb).map(|(x, y)| *x && *y).collect();
            let either: Vec<bool> = ma.iter().zip(&mb).map(|(x, y)| *x || *y).collect();
            prop_assert_eq!(matches_on(&and, &runs), both);
            prop_assert_eq!(matches_on(&or, &runs), either);
        }
    }

    #[test]
    fn generated_sorts_parse_and_order(query in grammar::sort()) {
        let runs = sample();
        let text = query.text();
        match parse_sort(&text) {
            Ok(keys) => {
                let view = |r| RunView { run: r, now_ms: 0 };
                for a in &runs {
                    for b in &runs {
                        let ab = compare_by(&keys, &view(a), &view(b));
                        prop_assert_eq!(ab, compare_by(&keys, &view(b), &view(a)).reverse());
                    }
                }
            }
            Err(e) => {
                prop_assert!(!query.valid, "the grammar's own sort is refused: {text:?}: {e}");
                prop_assert!((1..=text.chars().count() + 1).contains(&e.column));
            }
        }
    }
}

/// What the parser said, for the coverage table.
fn outcome(result: &Result<Expr, QueryError>, into: &mut BTreeMap<String, u32>) {
    let mut seen = std::collections::BTreeSet::new();
    match result {
        Ok(expr) => collect_constructs(expr, &mut seen),
        Err(e) => {
            let kind = ERRORS.iter().find(|k| e.message.contains(*k)).map_or_else(
                || format!("error: other ({})", e.message),
                |k| format!("error: {k}"),
            );
            seen.insert(kind);
        }
    }
    for s in seen {
        *into.entry(s).or_default() += 1;
    }
}

fn collect_constructs(expr: &Expr, seen: &mut std::collections::BTreeSet<String>) {
    let field = |f: &Field, seen: &mut std::collections::BTreeSet<String>| {
        seen.insert(match f {
            Field::Attr(_) => "field: attribute".into(),
            Field::Config(_) => "field: config".into(),
            Field::Metric(_, agg) => format!("field: metric {agg:?}"),
            Field::Summary(_) => "field: summary".into(),
            Field::Param(_) => "field: param".into(),
            Field::Tag(_) => "field: tag".into(),
            Field::Dataset(_) => "field: dataset".into(),
        });
    };
    let literal = |l: &Literal, seen: &mut std::collections::BTreeSet<String>| {
        seen.insert(match l {
            Literal::Num(n) if n.is_nan() => "literal: NaN".into(),
            Literal::Num(n) if n.is_infinite() => "literal: ±inf".into(),
            Literal::Num(_) => "literal: number".into(),
            Literal::Str(_) => "literal: string".into(),
            Literal::Bool(_) => "literal: bool".into(),
            Literal::Null => "literal: null".into(),
        });
    };
    match expr {
        Expr::And(all) | Expr::Or(all) => {
            seen.insert(
                if matches!(expr, Expr::And(_)) {
                    "expr: and"
                } else {
                    "expr: or"
                }
                .into(),
            );
            for e in all {
                collect_constructs(e, seen);
            }
        }
        Expr::Not(inner) => {
            seen.insert("expr: not".into());
            collect_constructs(inner, seen);
        }
        Expr::Compare {
            field: f,
            op,
            value,
        } => {
            seen.insert(format!("expr: compare {op:?}"));
            field(f, seen);
            literal(value, seen);
        }
        Expr::In {
            field: f,
            values,
            negated,
        } => {
            seen.insert(format!("expr: in{}", if *negated { " (not)" } else { "" }));
            field(f, seen);
            for v in values {
                literal(v, seen);
            }
        }
        Expr::IsNull { field: f, negated } => {
            seen.insert(format!(
                "expr: is{} null",
                if *negated { " not" } else { "" }
            ));
            field(f, seen);
        }
        Expr::Like {
            field: f,
            case_insensitive,
            negated,
            ..
        } => {
            seen.insert(format!(
                "expr: {}{}",
                if *negated { "not " } else { "" },
                if *case_insensitive { "ilike" } else { "like" }
            ));
            field(f, seen);
        }
        Expr::Contains { field: f, value } => {
            seen.insert("expr: contains".into());
            field(f, seen);
            literal(value, seen);
        }
    }
}

/// The parser's errors, by a phrase of their message.
const ERRORS: &[&str] = &[
    "the filter is empty",
    "unexpected character",
    "expected '!='",
    "unterminated string",
    "unterminated `quoted` name",
    "is not a number",
    "expected a field name",
    "unknown field",
    "needs a key after the dot",
    "datasets. takes",
    "apply to metrics.KEY",
    "expected ')' after the metric name",
    "expected an operator",
    "expected 'in', 'like', 'ilike' or 'contains' after 'not'",
    "expected 'null' after 'is'",
    "expected '(' to start a list",
    "expected ',' or ')' in list",
    "needs a string pattern",
    "expected a value",
    "expected ')'",
    "join conditions with 'and'",
    "nests deeper than",
    "more than 1000 conditions",
    "at most 10000 values",
];

/// The coverage the grammar reaches, on a fixed seed: every kind of
/// expression, field, operator and literal the parser builds, and every
/// error it gives (`--nocapture` shows the table).
#[test]
fn generated_filters_reach_every_construct_and_error() {
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    const CASES: u32 = 3_000;
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: CASES,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let runs = sample();
    let counts = std::cell::RefCell::new(BTreeMap::new());
    runner
        .run(&grammar::filter(), |query| {
            check_filter(&query, &runs)?;
            outcome(&parse_filter(&query.text()), &mut counts.borrow_mut());
            Ok(())
        })
        .unwrap();
    let counts = counts.into_inner();
    for (what, n) in &counts {
        eprintln!("{what:<64} {n:>5}");
    }
    let mut expected: Vec<String> = ERRORS.iter().map(|e| format!("error: {e}")).collect();
    for op in ["Eq", "Ne", "Lt", "Le", "Gt", "Ge"] {
        expected.push(format!("expr: compare {op}"));
    }
    for e in [
        "and",
        "or",
        "not",
        "in",
        "in (not)",
        "is null",
        "is not null",
        "like",
        "ilike",
        "not like",
        "not ilike",
        "contains",
    ] {
        expected.push(format!("expr: {e}"));
    }
    for f in [
        "attribute",
        "config",
        "metric Last",
        "metric Min",
        "metric Max",
        "metric Count",
        "summary",
        "tag",
        "dataset",
    ] {
        expected.push(format!("field: {f}"));
    }
    for l in ["number", "NaN", "±inf", "string", "bool", "null"] {
        expected.push(format!("literal: {l}"));
    }
    let missed: Vec<&String> = expected
        .iter()
        .filter(|e| !counts.contains_key(*e))
        .collect();
    eprintln!(
        "reached {} of {} constructs and errors in {CASES} filters",
        expected.len() - missed.len(),
        expected.len()
    );
    assert!(missed.is_empty(), "the grammar never reaches {missed:?}");
}

/// The query fuzz target's seeds, through the parser and evaluator (the
/// server's tests also run them against a store).
#[test]
fn fuzz_seeds_parse_or_explain() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/query_parser");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let (filter, sort) = text.split_once('\n').unwrap_or((&text, ""));
        parses_or_explains(filter, &sample()).unwrap();
        let _ = parse_sort(sort);
        seen += 1;
    }
    assert!(seen >= 5);
}

#[test]
fn parent_finds_the_runs_nested_under_one() {
    let mut runs = sample();
    for child in runs.iter_mut().skip(1) {
        child
            .kv_tags
            .insert(crate::run::PARENT_TAG.into(), "a".into());
    }
    let children = hits("parent = 'a'", &runs);
    assert!(!children.is_empty());
    assert!(!children.contains(&"a".to_string()));
    assert_eq!(hits("parent is null", &runs), ["a"]);
    assert_eq!(
        hits("parent = 'a'", &runs).len() + hits("parent is null", &runs).len(),
        runs.len()
    );
}
