//! The pruners' decisions on known curves; the expected answers are what
//! Optuna 5.1 and W&B's sweep controller decide on the same reports.

use super::*;
use crate::sweep::parse_yaml;

fn complete(number: u64, iv: &[(i64, f64)]) -> Observation {
    Observation {
        number,
        state: Some(TrialState::Complete),
        value: iv.last().map(|&(_, v)| v),
        intermediate: iv.to_vec(),
        ..Default::default()
    }
}

fn running(number: u64, iv: &[(i64, f64)]) -> Observation {
    Observation {
        number,
        state: Some(TrialState::Running),
        intermediate: iv.to_vec(),
        ..Default::default()
    }
}

/// Five complete trials; the medians at steps 0, 1, 2 are 3.0, 2.7, 2.4.
fn c5() -> Vec<Observation> {
    (0..5)
        .map(|i| {
            let v = (i + 1) as f64;
            complete(i, &[(0, v), (1, 0.9 * v), (2, 0.8 * v)])
        })
        .collect()
}

fn median(settings: PercentileSettings) -> Pruner {
    Pruner::Percentile(settings)
}

#[test]
fn median_pruner_decides_as_optuna() {
    let nan = f64::NAN;
    let d = PercentileSettings::default;
    let with = |f: fn(&mut PercentileSettings)| {
        let mut s = d();
        f(&mut s);
        s
    };
    let mut c5_nan = c5();
    c5_nan[3].intermediate[0].1 = nan;
    c5_nan[4].intermediate[0].1 = nan;
    type Case = (
        PercentileSettings,
        Vec<Observation>,
        Vec<(i64, f64)>,
        Direction,
        bool,
    );
    let cases: Vec<Case> = vec![
        (d(), c5(), vec![(0, 2.5)], Direction::Minimize, false),
        (d(), c5(), vec![(0, 3.5)], Direction::Minimize, true),
        (d(), c5(), vec![(0, 3.0)], Direction::Minimize, false),
        (
            d(),
            c5(),
            vec![(0, 3.5), (1, 2.0)],
            Direction::Minimize,
            false,
        ),
        (
            d(),
            c5(),
            vec![(0, 1.0), (1, 2.8)],
            Direction::Minimize,
            false,
        ),
        (
            d(),
            c5(),
            vec![(0, 3.5), (1, 2.8)],
            Direction::Minimize,
            true,
        ),
        (
            d(),
            c5()[..4].to_vec(),
            vec![(0, 100.0)],
            Direction::Minimize,
            false,
        ),
        (d(), c5(), vec![(0, nan)], Direction::Minimize, true),
        (
            d(),
            c5(),
            vec![(0, nan), (1, 0.1)],
            Direction::Minimize,
            false,
        ),
        (d(), c5(), vec![(7, 100.0)], Direction::Minimize, false),
        (
            with(|s| s.n_warmup_steps = 2),
            c5(),
            vec![(0, 100.0)],
            Direction::Minimize,
            false,
        ),
        (
            with(|s| s.n_warmup_steps = 2),
            c5(),
            vec![(0, 100.0), (1, 100.0), (2, 100.0)],
            Direction::Minimize,
            true,
        ),
        (
            with(|s| s.interval_steps = 2),
            c5(),
            vec![(0, 0.0), (1, 100.0)],
            Direction::Minimize,
            false,
        ),
        (
            with(|s| s.interval_steps = 2),
            c5(),
            vec![(1, 100.0)],
            Direction::Minimize,
            true,
        ),
        (
            with(|s| s.interval_steps = 2),
            c5(),
            vec![(0, 0.0), (1, 0.0), (2, 100.0)],
            Direction::Minimize,
            false,
        ),
        (
            with(|s| s.n_min_trials = 6),
            c5(),
            vec![(0, 100.0)],
            Direction::Minimize,
            false,
        ),
        (
            with(|s| s.n_startup_trials = 4),
            c5()[..4].to_vec(),
            vec![(0, 2.6)],
            Direction::Minimize,
            true,
        ),
        (
            with(|s| s.n_startup_trials = 4),
            c5()[..4].to_vec(),
            vec![(0, 2.4)],
            Direction::Minimize,
            false,
        ),
        (d(), c5(), vec![(0, 2.5)], Direction::Maximize, true),
        (d(), c5(), vec![(0, 3.5)], Direction::Maximize, false),
        (d(), c5(), vec![(0, 3.0)], Direction::Maximize, false),
        (
            d(),
            c5_nan.clone(),
            vec![(0, 2.1)],
            Direction::Minimize,
            true,
        ),
        (d(), c5_nan, vec![(0, 1.9)], Direction::Minimize, false),
    ];
    for (i, (settings, history, iv, dir, want)) in cases.into_iter().enumerate() {
        let trial = running(99, &iv);
        let got = median(settings).should_prune("s", &trial, &history, dir);
        assert_eq!(got, want, "case {i}: {iv:?} {dir:?}");
    }
}

/// Trials run one after another, each reporting at the given steps and
/// asking after each report; a pruned trial stops there.
fn sha_sequence(settings: AshaSettings, dir: Direction, reports: &[Vec<(i64, f64)>]) -> Vec<bool> {
    let pruner = Pruner::Asha(settings);
    let mut history: Vec<Observation> = Vec::new();
    let mut decisions = Vec::new();
    for (n, trial_reports) in reports.iter().enumerate() {
        let mut trial = running(n as u64, &[]);
        let mut pruned = false;
        for &r in trial_reports {
            trial.intermediate.push(r);
            if pruner.should_prune("s", &trial, &history, dir) {
                pruned = true;
                break;
            }
        }
        trial.state = Some(if pruned {
            TrialState::Pruned
        } else {
            TrialState::Complete
        });
        decisions.push(pruned);
        history.push(trial);
    }
    decisions
}

fn asha(min_resource: i64, reduction_factor: u32) -> AshaSettings {
    AshaSettings {
        min_resource: Some(min_resource),
        reduction_factor,
        ..Default::default()
    }
}

#[test]
fn successive_halving_decides_as_optuna() {
    let at1 = |vs: &[f64]| vs.iter().map(|&v| vec![(1, v)]).collect::<Vec<_>>();
    assert_eq!(
        sha_sequence(
            asha(1, 4),
            Direction::Minimize,
            &at1(&[5.0, 3.0, 4.0, 1.0, 2.0, 0.5, 6.0, 0.8, 0.9])
        ),
        [false, false, true, false, true, false, true, false, true]
    );
    let flat = |vs: &[f64]| {
        vs.iter()
            .map(|&v| (0..5).map(|s| (s, v)).collect())
            .collect::<Vec<Vec<(i64, f64)>>>()
    };
    assert_eq!(
        sha_sequence(
            asha(1, 2),
            Direction::Minimize,
            &flat(&[5.0, 3.0, 4.0, 1.0, 2.0])
        ),
        [false, false, true, false, false]
    );
    assert_eq!(
        sha_sequence(
            asha(1, 2),
            Direction::Maximize,
            &at1(&[5.0, 3.0, 4.0, 6.0, 1.0])
        ),
        [false, true, true, false, true]
    );
    let boot = AshaSettings {
        bootstrap_count: 2,
        ..asha(1, 2)
    };
    assert_eq!(
        sha_sequence(boot, Direction::Minimize, &at1(&[5.0, 3.0, 4.0, 1.0])),
        [true, true, true, false]
    );
    let mesr = AshaSettings {
        min_early_stopping_rate: 1,
        ..asha(1, 2)
    };
    let two = |vs: &[f64]| vs.iter().map(|&v| vec![(1, v), (2, v)]).collect::<Vec<_>>();
    assert_eq!(
        sha_sequence(mesr, Direction::Minimize, &two(&[5.0, 3.0, 4.0])),
        [false, false, true]
    );
}

#[test]
fn auto_min_resource_waits_for_a_complete_trial() {
    let pruner = Pruner::Asha(AshaSettings::default());
    let long = complete(0, &(0..300).map(|s| (s, 1.0)).collect::<Vec<_>>());
    let lone = running(1, &[(1, 9.0), (2, 9.0)]);
    assert!(!pruner.should_prune("s", &lone, &Vec::<Observation>::new(), Direction::Minimize));
    assert_eq!(auto_min_resource(std::slice::from_ref(&long)), Some(2));
    // Rung values are read back from the reports, so the complete trial's
    // value at step 2 (1.0) competes and 9 is pruned. Optuna keeps it: the
    // complete trial ran before the rung was known and recorded no value
    // there, so 9 had no competitor.
    assert!(pruner.should_prune("s", &lone, &[long], Direction::Minimize));
}

#[test]
fn hyperband_brackets_are_optunas() {
    assert_eq!(hyperband_budgets(1, 100, 3), [81, 34, 15, 8, 5]);
    assert_eq!(hyperband_budgets(1, 81, 3), [81, 34, 15, 8, 5]);
    assert_eq!(hyperband_budgets(1, 27, 3), [27, 12, 6, 4]);
    assert_eq!(hyperband_budgets(1, 10, 3), [9, 5, 3]);
    assert_eq!(hyperband_budgets(1, 100, 4), [64, 22, 8, 4]);
    assert_eq!(hyperband_budgets(3, 30, 3), [9, 5, 3]);
    assert_eq!(crc32(b"hb-study_0"), 3_116_587_573);
    let budgets = hyperband_budgets(1, 100, 3);
    let brackets: Vec<usize> = (0..10).map(|n| bracket(&budgets, "hb-study", n)).collect();
    assert_eq!(brackets, [1, 0, 0, 0, 0, 0, 1, 0, 1, 3]);
}

fn bands_of(yaml_et: &str) -> HyperbandSpec {
    let doc = format!(
        "method: random\nprogram: t.py\nmetric: {{name: loss}}\nparameters: {{x: {{values: [1]}}}}\nearly_terminate: {yaml_et}\n"
    );
    match parse_yaml(&doc) {
        Ok(spec) => spec.early_terminate.unwrap_or(HyperbandSpec {
            bands: vec![],
            eta: 0.0,
            strict: true,
        }),
        Err(e) => panic!("{yaml_et}: {e}"),
    }
}

#[test]
fn wandb_bands() {
    let cases: &[(&str, &[u64])] = &[
        ("{type: hyperband, min_iter: 3}", &[3, 9, 27, 81, 243, 729]),
        (
            "{type: hyperband, min_iter: 1, eta: 2.5}",
            &[1, 2, 6, 15, 39, 97],
        ),
        ("{type: hyperband, max_iter: 27, s: 2}", &[3, 9]),
        ("{type: hyperband, max_iter: 81, s: 3}", &[3, 9, 27]),
        ("{type: hyperband, max_iter: 81, s: 10}", &[1, 3, 9, 27]),
        ("{type: hyperband, max_iter: 18, eta: 3, s: 2}", &[2, 6]),
        (
            "{type: hyperband, max_iter: 100, s: 3, eta: 4}",
            &[1, 6, 25],
        ),
    ];
    for (et, want) in cases {
        let spec = bands_of(et);
        assert_eq!(&spec.bands[..want.len()], *want, "{et}");
        assert!(spec.strict);
    }
}

#[test]
fn wandb_hyperband_stops_as_wandb() {
    let run = |running: bool, values: &'static [f64]| (running, values);
    let check = |et: &str, goal: Direction, trials: &[(bool, &'static [f64])], want: &[usize]| {
        let spec = bands_of(et);
        let view: Vec<BandTrial<'_>> = trials
            .iter()
            .map(|&(running, values)| BandTrial { running, values })
            .collect();
        assert_eq!(wandb_hyperband_stops(&spec, goal, &view), want, "{et}");
    };
    check(
        "{type: hyperband, max_iter: 5, eta: 2, s: 2}",
        Direction::Minimize,
        &[
            run(false, &[10.0, 9.0]),
            run(true, &[10.0, 10.0]),
            run(true, &[10.0, 8.0, 8.0]),
            run(true, &[10.0, 7.0, 7.0]),
            run(false, &[10.0, 6.0, 6.0]),
        ],
        &[1],
    );
    let four: [(bool, &'static [f64]); 4] = [
        (true, &[5.0, 4.0, 3.0]),
        (true, &[6.0, 6.0, 6.0]),
        (true, &[5.0, 2.0, 2.0]),
        (true, &[9.0, 1.0, 1.0]),
    ];
    check(
        "{type: hyperband, min_iter: 2, eta: 2}",
        Direction::Minimize,
        &four,
        &[1],
    );
    check(
        "{type: hyperband, min_iter: 2, eta: 2, strict: false}",
        Direction::Minimize,
        &four,
        &[1],
    );
    let negated: [(bool, &'static [f64]); 4] = [
        (true, &[-5.0, -4.0, -3.0]),
        (true, &[-6.0, -6.0, -6.0]),
        (true, &[-5.0, -2.0, -2.0]),
        (true, &[-9.0, -1.0, -1.0]),
    ];
    check(
        "{type: hyperband, min_iter: 2, eta: 2}",
        Direction::Maximize,
        &negated,
        &[1],
    );
    let three: [(bool, &'static [f64]); 3] = [
        (true, &[4.0, 3.0, 2.0]),
        (true, &[1.0, 1.0, 5.0]),
        (true, &[3.0, 3.0, 3.0]),
    ];
    check(
        "{type: hyperband, min_iter: 3}",
        Direction::Minimize,
        &three,
        &[1],
    );
    check(
        "{type: hyperband, min_iter: 3, strict: false}",
        Direction::Minimize,
        &three,
        &[],
    );
    check(
        "{type: hyperband, min_iter: 2, eta: 2}",
        Direction::Minimize,
        &[
            run(true, &[5.0, 5.0]),
            run(false, &[1.0, 1.0]),
            run(true, &[3.0, 3.0]),
        ],
        &[0],
    );
    check(
        "{type: hyperband, min_iter: 2, eta: 2}",
        Direction::Minimize,
        &[run(true, &[5.0, f64::NAN, 5.0]), run(false, &[1.0, 1.0])],
        &[],
    );
    check(
        "{type: hyperband, max_iter: 18, eta: 3, s: 2, strict: false}",
        Direction::Minimize,
        &[run(
            true,
            &[10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0],
        )],
        &[],
    );
}
