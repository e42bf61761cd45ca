//! Which runs a query selects, in its order: the same evaluation over
//! records in memory whichever database they were read from.

use labbook_core::RunRecord;
use labbook_core::query::{Expr, RunView, compare_values, sort_values};

use crate::error::{Result, StoreError};
use crate::types::{Deleted, RunQuery};

/// The runs of `runs` that match `query`'s project, deletion and filter,
/// in its order (newest first when it has no sort), before paging.
pub(crate) fn select<'a>(
    runs: impl Iterator<Item = (i64, &'a RunRecord)>,
    query: &RunQuery,
    now_ms: i64,
) -> Vec<i64> {
    let mut runs: Vec<(i64, &RunRecord)> = runs
        .filter(|(_, r)| {
            query
                .project_ids
                .as_ref()
                .is_none_or(|ids| ids.contains(&r.project_id))
        })
        .filter(|(_, r)| query.project.as_ref().is_none_or(|p| *p == r.project))
        .filter(|(_, r)| match query.deleted {
            Deleted::Exclude => r.deleted_ms.is_none(),
            Deleted::Only => r.deleted_ms.is_some(),
            Deleted::Include => true,
        })
        .filter(|(_, run)| {
            query
                .filter
                .as_ref()
                .is_none_or(|f: &Expr| f.matches(&RunView { run, now_ms }))
        })
        .collect();
    // Runs started in the same millisecond in id order, as MLflow breaks
    // its ties.
    let newest_first = |a: &RunRecord, b: &RunRecord| {
        b.created_ms
            .cmp(&a.created_ms)
            .then_with(|| a.id.cmp(&b.id))
    };
    if query.sort.is_empty() {
        runs.sort_unstable_by(|(_, a), (_, b)| newest_first(a, b));
        return runs.into_iter().map(|(pk, _)| pk).collect();
    }
    let views: Vec<(i64, RunView<'_>)> = runs
        .iter()
        .map(|(pk, run)| (*pk, RunView { run, now_ms }))
        .collect();
    let mut keyed: Vec<(Vec<labbook_core::query::Value<'_>>, i64, &RunRecord)> = views
        .iter()
        .map(|(pk, v)| (sort_values(&query.sort, v), *pk, v.run))
        .collect();
    keyed.sort_unstable_by(|(ka, _, a), (kb, _, b)| {
        compare_values(&query.sort, ka, kb).then_with(|| newest_first(a, b))
    });
    keyed.into_iter().map(|(_, pk, _)| pk).collect()
}

/// The one run `reference` (an id prefix or a name) names among
/// `candidates`: not found when there is none, ambiguous when several.
pub(crate) fn the_one(reference: &str, candidates: Vec<RunRecord>) -> Result<RunRecord> {
    if candidates.len() > 1 {
        return Err(StoreError::Ambiguous {
            what: "runs",
            reference: reference.to_string(),
            candidates: candidates
                .iter()
                .take(5)
                .map(|r| format!("{} ({})", r.id, r.project))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    candidates
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::NotFound {
            what: "run",
            id: reference.to_string(),
        })
}

/// Whether `reference` may be a run id's prefix (else it is only a name).
pub(crate) fn may_be_id_prefix(reference: &str) -> bool {
    reference.len() >= crate::MIN_ID_PREFIX && reference.chars().all(|c| c.is_ascii_alphanumeric())
}
