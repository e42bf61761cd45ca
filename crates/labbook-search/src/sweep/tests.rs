//! W&B's documented sweep semantics, table by table; the expected values
//! are what W&B's own sweep controller gives for the same file.

use serde_json::json;

use super::*;
use crate::grid::Grid;
use crate::random::ppf;

fn param(yaml: &str) -> (ParamSpec, &'static str) {
    let doc = format!("method: random\nprogram: t.py\nparameters:\n  x: {yaml}\n");
    match parse_yaml(&doc) {
        Ok(spec) => (
            spec.parameters[0].spec.clone(),
            spec.parameters[0].distribution,
        ),
        Err(e) => panic!("{yaml}: {e}"),
    }
}

fn error(doc: &str) -> SearchError {
    match parse_yaml(doc) {
        Ok(spec) => panic!("accepted: {doc}\n{spec:?}"),
        Err(e) => e,
    }
}

fn param_error(yaml: &str) -> SearchError {
    error(&format!(
        "method: random\nprogram: t.py\nparameters:\n  x: {yaml}\n"
    ))
}

#[test]
fn every_distribution_draws_as_wandb() {
    // (parameter, [(u, value)]): W&B's ppf at u.
    let cases: &[(&str, &[(f64, serde_json::Value)])] = &[
        (
            "{min: 1, max: 4}",
            &[
                (0.25, json!(1)),
                (0.5, json!(2)),
                (0.75, json!(3)),
                (0.999999, json!(4)),
            ],
        ),
        (
            "{min: 0.0, max: 10.0}",
            &[(0.25, json!(2.5)), (0.5, json!(5.0)), (0.75, json!(7.5))],
        ),
        (
            "{distribution: q_uniform, min: 0, max: 10, q: 3}",
            &[(0.25, json!(3)), (0.5, json!(6)), (0.75, json!(6))],
        ),
        (
            "{distribution: q_uniform, min: 0, max: 10}",
            &[(0.25, json!(2.0)), (0.5, json!(5.0)), (0.75, json!(8.0))],
        ),
        (
            "{distribution: q_uniform, min: -1, max: 1, q: 0.5}",
            &[
                (0.1, json!(-1.0)),
                (0.5, json!(0.0)),
                (0.75, json!(0.5)),
                (0.9, json!(1.0)),
            ],
        ),
        (
            "{distribution: log_uniform, min: 0, max: 2}",
            &[
                (0.25, json!(1.6487212707001282)),
                (0.5, json!(std::f64::consts::E)),
                (0.75, json!(4.481689070338065)),
            ],
        ),
        (
            "{distribution: log_uniform_values, min: 1, max: 100}",
            &[
                (0.25, json!(3.162277660168379)),
                (0.75, json!(31.622776601683793)),
            ],
        ),
        (
            "{distribution: inv_log_uniform, min: 0, max: 2}",
            &[
                (0.25, json!(0.22313016014842982)),
                (0.5, json!(0.3678794411714424)),
                (0.75, json!(0.6065306597126334)),
            ],
        ),
        (
            "{distribution: inv_log_uniform_values, min: 1, max: 100}",
            &[
                (0.25, json!(3.162277660168379)),
                (0.75, json!(31.622776601683793)),
            ],
        ),
        (
            "{distribution: q_log_uniform_values, min: 1, max: 100, q: 5}",
            &[(0.25, json!(5)), (0.5, json!(10)), (0.75, json!(30))],
        ),
        (
            "{distribution: q_log_uniform_values, min: 1, max: 1000, q: 1}",
            &[
                (0.1, json!(2)),
                (0.5, json!(32)),
                (0.75, json!(178)),
                (0.9, json!(501)),
            ],
        ),
        (
            "{distribution: q_log_uniform, min: 0, max: 5, q: 2}",
            &[
                (0.1, json!(2)),
                (0.5, json!(12)),
                (0.75, json!(42)),
                (0.9, json!(90)),
            ],
        ),
        (
            "{distribution: normal}",
            &[(0.25, json!(-0.6744897501960817)), (0.5, json!(0.0))],
        ),
        (
            "{distribution: normal, mu: 5, sigma: 2}",
            &[
                (0.1, json!(2.4368968689107993)),
                (0.5, json!(5.0)),
                (0.9, json!(7.563103131089201)),
            ],
        ),
        (
            "{distribution: q_normal, q: 0.5}",
            &[
                (0.1, json!(-1.5)),
                (0.5, json!(0.0)),
                (0.75, json!(0.5)),
                (0.9, json!(1.5)),
            ],
        ),
        (
            "{distribution: q_normal, mu: 10, sigma: 3, q: 2}",
            &[
                (0.1, json!(6)),
                (0.5, json!(10)),
                (0.75, json!(12)),
                (0.9, json!(14)),
            ],
        ),
        (
            "{distribution: log_normal}",
            &[
                (0.1, json!(0.2776062418520099)),
                (0.5, json!(1.0)),
                (0.9, json!(3.6022244792791573)),
            ],
        ),
        (
            "{distribution: log_normal, mu: 1, sigma: 2}",
            &[
                (0.5, json!(std::f64::consts::E)),
                (0.75, json!(10.474874663016859)),
            ],
        ),
        (
            "{distribution: q_log_normal}",
            &[
                (0.1, json!(0.0)),
                (0.5, json!(1.0)),
                (0.75, json!(2.0)),
                (0.9, json!(4.0)),
            ],
        ),
        (
            "{distribution: beta, a: 2, b: 5}",
            &[
                (0.1, json!(0.09259525891312873)),
                (0.5, json!(0.26444998329566005)),
                (0.9, json!(0.5103163065514917)),
            ],
        ),
        (
            "{distribution: q_beta, a: 2, b: 5, q: 0.1}",
            &[
                (0.1, json!(0.1)),
                (0.5, json!(0.30000000000000004)),
                (0.75, json!(0.4)),
                (0.9, json!(0.5)),
            ],
        ),
        (
            "{values: [a, b, c]}",
            &[(0.25, json!("a")), (0.5, json!("b")), (0.75, json!("c"))],
        ),
        (
            "{values: [a, b, c], probabilities: [0.2, 0.3, 0.5]}",
            &[
                (0.1, json!("a")),
                (0.2, json!("b")),
                (0.5, json!("c")),
                (0.9, json!("c")),
            ],
        ),
        ("{value: 7}", &[(0.3, json!(7))]),
        ("{value: null}", &[(0.3, json!(null))]),
    ];
    for (yaml, draws) in cases {
        let (spec, _) = param(yaml);
        for (u, want) in *draws {
            let got = spec.finish(ppf(&spec, *u));
            let close = match (got.as_f64(), want.as_f64()) {
                (Some(a), Some(b)) => {
                    (a - b).abs() <= 1e-9 * b.abs().max(1.0) && got.is_i64() == want.is_i64()
                }
                _ => got == *want,
            };
            assert!(close, "{yaml} at u={u}: got {got}, want {want}");
        }
    }
}

#[test]
fn distributions_are_inferred_as_wandb_does() {
    let cases = [
        ("{values: [1, 2]}", "categorical"),
        (
            "{values: [1, 2], probabilities: [0.3, 0.7]}",
            "categorical_w_probabilities",
        ),
        ("{min: 1, max: 10}", "int_uniform"),
        ("{min: 1.0, max: 10.0}", "uniform"),
        ("{min: 0, max: 0.1}", "uniform"),
        ("{value: null}", "constant"),
        ("{distribution: q_normal}", "q_normal"),
        ("{distribution: beta}", "beta"),
        ("{distribution: uniform, min: 0, max: 1}", "uniform"),
    ];
    for (yaml, want) in cases {
        assert_eq!(param(yaml).1, want, "{yaml}");
    }
    let (spec, _) = param("{distribution: q_normal}");
    assert_eq!(spec.q, Some(1.0));
    assert!(!spec.integer, "the default q is 1.0, a float");
    assert_eq!(
        spec.prior,
        Prior::Normal {
            mu: 0.0,
            sigma: 1.0
        }
    );
}

#[test]
fn bad_parameters_are_errors_naming_the_field() {
    let cases = [
        (
            "{min: 1, max: 1}",
            "parameters.x",
            "min 1 is not less than max 1",
        ),
        ("{min: 5, max: 1}", "parameters.x", "not less than"),
        (
            "{distribution: log_uniform_values, min: 0, max: 1}",
            "parameters.x.min",
            "min > 0",
        ),
        (
            "{distribution: int_uniform, min: 0.0, max: 1.0}",
            "parameters.x",
            "whole-number",
        ),
        ("{min: 0, max: 1, q: 0.1}", "parameters.x.q", "unknown key"),
        (
            "{values: [3], value: 3}",
            "parameters.x.value",
            "unknown key",
        ),
        ("{values: [3], foo: 1}", "parameters.x.foo", "unknown key"),
        ("{values: []}", "parameters.x.values", "must not be empty"),
        (
            "{distribution: normal, sigma: -1}",
            "parameters.x.sigma",
            "≥ 0",
        ),
        (
            "{values: [1, 2], probabilities: [0.5, 0.6]}",
            "parameters.x.probabilities",
            "sum to 1",
        ),
        (
            "{values: [1, 2], probabilities: [1.0]}",
            "parameters.x.probabilities",
            "one per value",
        ),
        (
            "{distribution: gaussian}",
            "parameters.x.distribution",
            "unknown distribution",
        ),
        (
            "{min: \"1e-5\", max: 0.1}",
            "parameters.x.min",
            "must be a number",
        ),
        (
            "{distribution: q_uniform, min: 0, max: 1, q: 0}",
            "parameters.x.q",
            "> 0",
        ),
        (
            "{parameters: {}}",
            "parameters.x.parameters",
            "at least one",
        ),
        (
            "{parameters: {a: {value: 1}}, foo: 2}",
            "parameters.x.foo",
            "unknown key",
        ),
        ("3", "parameters.x", "must be a mapping"),
    ];
    for (yaml, path, message) in cases {
        let e = param_error(yaml);
        assert_eq!(e.path, path, "{yaml}: {e}");
        assert!(e.message.contains(message), "{yaml}: {e}");
    }
    let e = error("method: random\nprogram: t.py\nparameters:\n  1a: {value: 1}\n");
    assert_eq!(e.path, "parameters.1a");
}

#[test]
fn bad_files_are_errors_naming_the_field() {
    let p = "parameters: {x: {values: [1, 2]}}\nprogram: t.py";
    let cases = [
        (format!("method: grid\n{p}\nfoo: 1\n"), "foo", "unknown key"),
        (format!("{p}\n"), "method", "required"),
        (format!("method: hyperopt\n{p}\n"), "method", "grid, random or bayes"),
        ("method: grid\n".to_string(), "parameters", "required"),
        ("method: grid\nparameters: {}\n".to_string(), "parameters", "at least one"),
        (format!("method: bayes\n{p}\n"), "metric", "metric"),
        (format!("method: random\n{p}\nmetric: {{goal: maximize}}\n"), "metric.name", "required"),
        (format!("method: random\n{p}\nmetric: {{name: acc, goal: maximise}}\n"), "metric.goal", "minimize or maximize"),
        (format!("method: random\n{p}\nmetric: {{name: acc, mode: max}}\n"), "metric.mode", "unknown key"),
        (format!("method: random\n{p}\nrun_cap: 0\n"), "run_cap", "above 0"),
        (format!("method: random\n{p}\nrun_cap: 5.1\n"), "run_cap", "above 0"),
        (format!("method: random\n{p}\ncommand: [python, '${{argz}}']\nprogram: t.py\n"), "command[1]", "unknown macro ${argz}"),
        (format!("method: random\n{p}\ncommand: python train.py\n"), "command", "list of words"),
        ("method: random\nparameters: {x: {values: [1]}}\n".to_string(), "program", "needs a program"),
        (
            format!("method: random\n{p}\nmetric: {{name: l}}\nearly_terminate: {{type: hyperband}}\n"),
            "early_terminate.min_iter",
            "min_iter",
        ),
        (
            format!("method: random\n{p}\nmetric: {{name: l}}\nearly_terminate: {{type: hyperband, max_iter: 2, s: 1}}\n"),
            "early_terminate",
            "no band",
        ),
        (
            format!("method: random\n{p}\nmetric: {{name: l}}\nearly_terminate: {{type: median}}\n"),
            "early_terminate.type",
            "hyperband",
        ),
        (
            format!("method: random\n{p}\nmetric: {{name: l}}\nearly_terminate: {{type: hyperband, min_iter: 3, eta: 1}}\n"),
            "early_terminate.eta",
            "> 1",
        ),
        (
            "method: grid\nprogram: t.py\nparameters: {lr: {min: 0.0, max: 1.0}}\n".to_string(),
            "parameters.lr",
            "finite set",
        ),
        (
            "method: bayes\nprogram: t.py\nmetric: {name: l}\nparameters: {x: {values: [1, 2], probabilities: [0.5, 0.5]}}\n".to_string(),
            "parameters.x",
            "bayes",
        ),
        (
            "method: bayes\nprogram: t.py\nmetric: {name: l}\nparameters: {x: {value: 1}}\n".to_string(),
            "parameters",
            "varies",
        ),
    ];
    for (doc, path, message) in cases {
        let e = error(&doc);
        assert_eq!(e.path, path, "{doc}: {e}");
        assert!(e.message.contains(message), "{doc}: {e}");
    }
}

#[test]
fn grids_enumerate_as_wandb() {
    let spec = parse_yaml(
        "method: grid\nprogram: t.py\nparameters:\n  z: {values: [1, 2]}\n  a: {values: [x, y]}\n  m: {value: 7}\n  n: {parameters: {q: {values: [true, false]}, b: {value: 0}}}\n",
    )
    .unwrap();
    let grid = Grid::new(&spec.space()).unwrap();
    assert_eq!(grid.len(), 8);
    let got: Vec<(String, bool, i64)> = (0..8)
        .map(|i| {
            let p = grid.point(i).unwrap();
            assert_eq!(p["m"], json!(7));
            assert_eq!(p["n.b"], json!(0));
            (
                p["a"].as_str().unwrap().to_string(),
                p["n.q"].as_bool().unwrap(),
                p["z"].as_i64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, bool, i64)> = [
        ("x", true, 1),
        ("x", true, 2),
        ("x", false, 1),
        ("x", false, 2),
        ("y", true, 1),
        ("y", true, 2),
        ("y", false, 1),
        ("y", false, 2),
    ]
    .iter()
    .map(|(a, q, z)| (a.to_string(), *q, *z))
    .collect();
    assert_eq!(got, want);
    let first = grid.point(0).unwrap();
    assert_eq!(
        Value::Object(spec.nested_args(&first)),
        json!({"a": "x", "m": 7, "n": {"b": 0, "q": true}, "z": 1})
    );

    let ints = parse_yaml("method: grid\nprogram: t.py\nparameters: {v1: {distribution: int_uniform, min: -52, max: 10}, v2: {value: test}}\n").unwrap();
    let grid = Grid::new(&ints.space()).unwrap();
    assert_eq!(grid.len(), 63);
    assert_eq!(grid.point(0).unwrap()["v1"], json!(-52));
    assert_eq!(grid.point(62).unwrap()["v1"], json!(10));

    let q = |min: &str, max: &str, qq: &str| {
        let s = parse_yaml(&format!(
            "method: grid\nprogram: t.py\nparameters: {{x: {{distribution: q_uniform, min: {min}, max: {max}, q: {qq}}}}}\n"
        ))
        .unwrap();
        let g = Grid::new(&s.space()).unwrap();
        (0..g.len())
            .map(|i| g.point(i).unwrap()["x"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        q("0", "1", "0.25"),
        [json!(0.0), json!(0.25), json!(0.5), json!(0.75)]
    );
    assert_eq!(
        q("0", "0.5", "0.1"),
        [
            json!(0.0),
            json!(0.1),
            json!(0.2),
            json!(0.30000000000000004),
            json!(0.4)
        ]
    );
    assert_eq!(q("1", "10", "3"), [json!(1), json!(4), json!(7)]);
}

#[test]
fn the_default_command_and_the_deprecated_forms() {
    let spec = parse_yaml(
        "method: random\nprogram: train.py\nparameters: {lr: {distribution: log_uniform, min: -9, max: -2}}\n",
    )
    .unwrap();
    assert_eq!(spec.command, DEFAULT_COMMAND);
    assert_eq!(spec.warnings.len(), 1);
    assert!(spec.warnings[0].contains("exponents"));
    assert_eq!(spec.direction(), Direction::Minimize);
}

fn obs(number: u64, state: crate::TrialState, value: Option<f64>) -> crate::Observation {
    crate::Observation {
        number,
        state: Some(state),
        value,
        ..Default::default()
    }
}

#[test]
fn a_grid_runs_each_point_once_and_a_crashed_one_once_more() {
    use crate::TrialState as S;
    let spec =
        parse_yaml("method: grid\nprogram: t.py\nparameters: {a: {values: [1, 2, 3]}}\n").unwrap();
    let mut observed: Vec<(crate::Observation, Option<u64>, Option<u64>)> = Vec::new();
    let view = |o: &[(crate::Observation, Option<u64>, Option<u64>)]| -> Vec<(crate::Observation, Option<u64>, Option<u64>)> { o.to_vec() };
    let next = |o: &[(crate::Observation, Option<u64>, Option<u64>)]| {
        let trials: Vec<SweepTrial<'_>> = o
            .iter()
            .map(|(obs, g, r)| SweepTrial {
                obs,
                grid_index: *g,
                retry_of: *r,
            })
            .collect();
        spec.next(1, &trials)
    };
    // Point 0 runs and crashes; point 1 is taken by a running trial.
    for (state, expect_index, expect_retry) in [
        (S::Crashed, 0, None),
        (S::Running, 0, Some(0)),
        (S::Complete, 1, None),
        (S::Complete, 2, None),
    ] {
        match next(&view(&observed)) {
            Next::Trial {
                params,
                grid_index,
                retry_of,
            } => {
                assert_eq!(grid_index, Some(expect_index));
                assert_eq!(retry_of, expect_retry);
                let mut o = obs(observed.len() as u64, state, Some(1.0));
                o.params = params;
                observed.push((o, grid_index, retry_of));
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(
        matches!(next(&observed), Next::Wait(_)),
        "a retry still runs"
    );
    observed[1].0.state = Some(S::Crashed);
    assert!(
        matches!(next(&observed), Next::Finish(ref why) if why.contains("3 points")),
        "a retry that crashes is not retried: {:?}",
        next(&observed)
    );
}

#[test]
fn a_sweep_stops_at_its_cap_its_target_and_after_failures_in_a_row() {
    use crate::TrialState as S;
    let spec = parse_yaml(
        "method: random\nprogram: t.py\nrun_cap: 3\nmetric: {name: acc, goal: maximize, target: 0.9}\nparameters: {a: {min: 0.0, max: 1.0}}\n",
    )
    .unwrap();
    let decide = |o: &[crate::Observation]| {
        let trials: Vec<SweepTrial<'_>> = o
            .iter()
            .map(|obs| SweepTrial {
                obs,
                grid_index: None,
                retry_of: None,
            })
            .collect();
        spec.next(1, &trials)
    };
    assert!(matches!(
        decide(&[obs(0, S::Complete, Some(0.5))]),
        Next::Trial { .. }
    ));
    assert!(
        matches!(decide(&[obs(0, S::Complete, Some(0.95))]), Next::Finish(ref w) if w.contains("target"))
    );
    let three = [
        obs(0, S::Complete, Some(0.1)),
        obs(1, S::Failed, None),
        obs(2, S::Running, None),
    ];
    assert!(matches!(decide(&three), Next::Wait(ref w) if w.contains("run cap")));
    // A crash without a value does not count against the cap.
    let crashed = [
        obs(0, S::Crashed, None),
        obs(1, S::Crashed, None),
        obs(2, S::Complete, Some(0.2)),
    ];
    assert!(matches!(decide(&crashed), Next::Trial { .. }));
    let uncapped =
        parse_yaml("method: random\nprogram: t.py\nparameters: {a: {min: 0.0, max: 1.0}}\n")
            .unwrap();
    let failing: Vec<crate::Observation> = (0..5).map(|n| obs(n, S::Failed, None)).collect();
    let trials: Vec<SweepTrial<'_>> = failing
        .iter()
        .map(|obs| SweepTrial {
            obs,
            grid_index: None,
            retry_of: None,
        })
        .collect();
    assert!(
        matches!(uncapped.next(1, &trials), Next::Finish(ref w) if w.contains("5 trials in a row"))
    );
}

#[test]
fn deep_nesting_and_huge_files_are_refused_not_overflowed() {
    let mut doc = String::from("method: random\nprogram: t.py\nparameters:\n");
    let mut indent = String::from("  ");
    for i in 0..40 {
        doc.push_str(&format!("{indent}p{i}:\n{indent}  parameters:\n"));
        indent.push_str("    ");
    }
    doc.push_str(&format!("{indent}leaf: {{value: 1}}\n"));
    let e = error(&doc);
    assert!(e.message.contains("nested more than 16 levels"), "{e}");
    // A grid of more points than any run would go through.
    let many: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    let big = format!(
        "method: grid\nprogram: t.py\nparameters:\n  a: {{values: [{0}]}}\n  b: {{values: [{0}]}}\n  c: {{values: [{0}]}}\n",
        many.join(", ")
    );
    let e = error(&big);
    assert!(e.message.contains("more than 10000000 points"), "{e}");
}
