//! Define-by-run studies, as Optuna users write them: the objective asks
//! for each parameter as it goes (`trial.suggest_float("lr", …)`), so the
//! search space is only known from the trials so far. At `ask`, TPE samples
//! jointly each group of parameters the finished trials share (Optuna's
//! relative sampling with group decomposition); a parameter outside those
//! groups (a conditional one, or any before the model warms up) is sampled
//! on its own when it is asked for.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SearchError;
use crate::grid::Grid;
use crate::pruner::Pruner;
use crate::random;
use crate::space::{Domain, ParamSpec};
use crate::tpe::{Tpe, TpeSettings, groups};
use crate::trial::{AsObservation, Direction, TrialState};

/// A trial as a study reads it: what it observed and each parameter's
/// domain as it was asked for.
pub trait TrialView: AsObservation {
    fn distributions(&self) -> &BTreeMap<String, Domain>;
}

impl<T: TrialView + ?Sized> TrialView for std::sync::Arc<T> {
    fn distributions(&self) -> &BTreeMap<String, Domain> {
        (**self).distributions()
    }
}

/// Which sampler a study uses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Sampler {
    Tpe(TpeSettings),
    Random,
    /// Every combination of these values, each once (Optuna's GridSampler).
    Grid {
        space: Vec<(String, Vec<Value>)>,
    },
}

impl Sampler {
    pub fn by_name(name: &str) -> Option<Sampler> {
        match name.to_ascii_lowercase().as_str() {
            "tpe" | "bayes" => Some(Sampler::Tpe(TpeSettings::default())),
            "random" => Some(Sampler::Random),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Sampler::Tpe(_) => "tpe",
            Sampler::Random => "random",
            Sampler::Grid { .. } => "grid",
        }
    }
}

/// A study's search settings, kept in the store with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudySettings {
    pub sampler: Sampler,
    #[serde(default)]
    pub pruner: Pruner,
    pub seed: u64,
}

/// What `ask` fixes for a new trial.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct AskPlan {
    /// Parameters sampled now, with their domains.
    pub params: BTreeMap<String, (Value, Domain)>,
    /// For a grid: the point's parameters (domains come when asked for).
    pub fixed: BTreeMap<String, Value>,
    pub grid_index: Option<u64>,
    /// For a grid: every point has been handed out.
    pub exhausted: bool,
}

fn grid_of(space: &[(String, Vec<Value>)]) -> Result<Grid, SearchError> {
    let specs: Vec<ParamSpec> = space
        .iter()
        .map(|(name, values)| {
            ParamSpec::new(
                name.clone(),
                Domain::Categorical {
                    choices: values.clone(),
                },
            )
        })
        .collect();
    Grid::new(&specs)
}

/// The domain each of `names` was last asked for with, among finished
/// trials. The newest trials usually hold them all, so the walk back
/// stops as soon as every name is found.
fn latest_domains<'a>(
    trials: &'a [impl TrialView],
    names: &BTreeSet<&str>,
) -> BTreeMap<&'a str, &'a Domain> {
    let mut out: BTreeMap<&str, &Domain> = BTreeMap::new();
    for t in trials.iter().rev() {
        if out.len() == names.len() {
            break;
        }
        if t.obs().state().is_finished() {
            for (name, d) in t.distributions() {
                if names.contains(name.as_str()) {
                    out.entry(name.as_str()).or_insert(d);
                }
            }
        }
    }
    out
}

/// The parameters every one of `finished` has (Optuna's intersection
/// search space), found without copying a name per trial.
fn common_params<'a>(finished: &[&'a (dyn AsObservation + 'a)]) -> BTreeSet<&'a str> {
    let Some((&first, rest)) = finished.split_first() else {
        return BTreeSet::new();
    };
    let mut common: Vec<&str> = first.obs().params.keys().map(String::as_str).collect();
    for &o in rest {
        if common.is_empty() {
            break;
        }
        let params = &o.obs().params;
        if params.len() == common.len()
            && params.keys().map(String::as_str).eq(common.iter().copied())
        {
            continue;
        }
        common.retain(|name| params.contains_key(*name));
    }
    common.into_iter().collect()
}

impl StudySettings {
    /// What a new trial, number `number`, starts with.
    pub fn ask(
        &self,
        direction: Direction,
        trials: &[impl TrialView],
        number: u64,
    ) -> Result<AskPlan, SearchError> {
        match &self.sampler {
            Sampler::Grid { space } => {
                let grid = grid_of(space)?;
                let taken: BTreeSet<u64> = trials
                    .iter()
                    .filter_map(|t| {
                        let params = &t.obs().params;
                        grid.index_of(params)
                    })
                    .collect();
                match (0..grid.len()).find(|i| !taken.contains(i)) {
                    Some(i) => Ok(AskPlan {
                        fixed: grid.point(i).unwrap_or_default(),
                        grid_index: Some(i),
                        ..AskPlan::default()
                    }),
                    None => Ok(AskPlan {
                        exhausted: true,
                        ..AskPlan::default()
                    }),
                }
            }
            Sampler::Random => Ok(AskPlan::default()),
            Sampler::Tpe(settings) => {
                let tpe = Tpe::new(settings.clone());
                if !settings.multivariate || !tpe.warmed_up(trials) {
                    return Ok(AskPlan::default());
                }
                let mut plan = AskPlan::default();
                let finished: Vec<&dyn AsObservation> = trials
                    .iter()
                    .filter(|t| {
                        matches!(t.obs().state(), TrialState::Complete | TrialState::Pruned)
                    })
                    .map(|t| t as &dyn AsObservation)
                    .collect();
                // Optuna's default: one joint space, the parameters every
                // finished trial has; the rest are sampled one at a time when
                // asked for. With `group`, each set of parameters that always
                // appear together is a joint space of its own.
                let spaces: Vec<BTreeSet<String>> = if settings.group {
                    groups(&finished, false)
                } else {
                    let common = common_params(&finished);
                    if common.is_empty() {
                        Vec::new()
                    } else {
                        vec![common.into_iter().map(str::to_string).collect()]
                    }
                };
                let names: BTreeSet<&str> = spaces.iter().flatten().map(String::as_str).collect();
                let domains = latest_domains(trials, &names);
                for group in &spaces {
                    let specs: Vec<ParamSpec> = group
                        .iter()
                        .filter_map(|name| {
                            domains
                                .get(name.as_str())
                                .filter(|d| !d.is_single())
                                .map(|d| ParamSpec::new(name.clone(), (*d).clone()))
                        })
                        .collect();
                    if specs.is_empty() {
                        continue;
                    }
                    let refs: Vec<&ParamSpec> = specs.iter().collect();
                    if let Some(xs) = tpe.sample_group(&refs, trials, direction, self.seed, number)
                    {
                        for (spec, x) in specs.iter().zip(xs) {
                            plan.params
                                .insert(spec.name.clone(), (spec.finish(x), spec.domain.clone()));
                        }
                    }
                }
                Ok(plan)
            }
        }
    }

    /// The value of a parameter asked for that `ask` did not fix.
    pub fn suggest(
        &self,
        direction: Direction,
        trials: &[impl TrialView],
        number: u64,
        name: &str,
        domain: &Domain,
    ) -> Value {
        let spec = ParamSpec::new(name, domain.clone());
        match &self.sampler {
            Sampler::Tpe(settings) => {
                let tpe = Tpe::new(settings.clone());
                match tpe.sample_group(&[&spec], trials, direction, self.seed, number) {
                    Some(xs) => spec.finish(xs[0]),
                    None => random::sample_param(&spec, self.seed, number),
                }
            }
            _ => random::sample_param(&spec, self.seed, number),
        }
    }
}

/// The best complete trial (the first of equals), by direction.
pub fn best<T: AsObservation>(trials: &[T], direction: Direction) -> Option<&T> {
    trials
        .iter()
        .filter(|t| t.obs().state() == TrialState::Complete)
        .filter(|t| t.obs().value.is_some_and(|v| !v.is_nan()))
        .fold(None, |best: Option<&T>, t| match best {
            Some(b)
                if !direction.better(
                    t.obs().value.unwrap_or(f64::NAN),
                    b.obs().value.unwrap_or(f64::NAN),
                ) =>
            {
                Some(b)
            }
            _ => Some(t),
        })
}
