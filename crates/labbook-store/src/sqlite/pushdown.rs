//! A cold query's filter, narrowed in SQL before any run is read.
//!
//! [`candidates`] turns the comparisons SQLite can judge (a metric or a
//! config value against a number, a config value equal to a string) into a
//! `WHERE` clause that every matching run satisfies: a superset, never a
//! subset, of the filter's answer. The runs it selects are then read in
//! full and the filter itself decides, so the answer is exactly the one
//! the run index gives; only the work is smaller. A filter that narrows
//! nothing, or too little, is left to the index.

use labbook_core::query::{Agg, CmpOp, Expr, Field, Literal};
use rusqlite::types::Value;

use crate::types::{Deleted, RunQuery};

/// The most parameters a narrowing clause may bind: at three a comparison,
/// some eighty comparisons, well inside SQLite's expression depth (1,000).
const MAX_PARAMS: usize = 250;

/// A `WHERE` clause over `runs r` and its parameters.
pub(super) struct Candidates {
    pub sql: String,
    pub params: Vec<Value>,
}

fn sql_op(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "=",
        CmpOp::Ne => "!=",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
    }
}

/// A JSON path to one top-level key. Inside a quoted label SQLite's path
/// syntax cannot hold a `"` and takes a backslash for an escape, so a key
/// with either (or a control character) gets `None`: the caller reads the
/// whole JSON in Rust instead.
pub(super) fn key_path(key: &str) -> Option<String> {
    (!key.chars().any(|c| c == '"' || c == '\\' || c.is_control())).then(|| format!("$.\"{key}\""))
}

struct Builder {
    params: Vec<Value>,
}

impl Builder {
    fn param(&mut self, value: Value) -> String {
        self.params.push(value);
        format!("?{}", self.params.len())
    }

    /// A clause every run matching `expr` satisfies, or `None` when SQL
    /// cannot narrow it (it then holds for every run).
    fn clause(&mut self, expr: &Expr) -> Option<String> {
        match expr {
            Expr::And(all) => {
                let parts: Vec<String> = all.iter().filter_map(|e| self.clause(e)).collect();
                (!parts.is_empty()).then(|| format!("({})", parts.join(" AND ")))
            }
            Expr::Or(any) => {
                // One branch SQL cannot narrow leaves the whole OR to the
                // filter: the parameters its other branches took go too, or
                // every later `?N` would name the wrong one.
                let mark = self.params.len();
                let parts: Option<Vec<String>> = any.iter().map(|e| self.clause(e)).collect();
                if parts.is_none() {
                    self.params.truncate(mark);
                }
                parts.map(|p| format!("({})", p.join(" OR ")))
            }
            Expr::Compare {
                field,
                op,
                value: Literal::Num(x),
            } if x.is_finite() => self.compare_num(field, *op, *x),
            Expr::Compare {
                field: Field::Config(key),
                op: CmpOp::Eq,
                value: Literal::Str(s),
            } => {
                // Only a string, or a list or map (compared by their text),
                // can equal a string.
                let path = self.param(Value::Text(key_path(key)?));
                let text = self.param(Value::Text(s.clone()));
                Some(format!(
                    "(json_type(r.config, {path}) IN ('array', 'object') \
                     OR (json_type(r.config, {path}) = 'text' AND r.config ->> {path} = {text}))"
                ))
            }
            _ => None,
        }
    }

    /// `field op x`: only a number compares with a number; a missing value
    /// and NaN match nothing.
    fn compare_num(&mut self, field: &Field, op: CmpOp, x: f64) -> Option<String> {
        let op = sql_op(op);
        match field {
            Field::Metric(key, agg) => {
                let column = match agg {
                    Agg::Last => "last_value",
                    Agg::Min => "min_value",
                    Agg::Max => "max_value",
                    Agg::Count => "count",
                };
                let key = self.param(Value::Text(key.clone()));
                let x = self.param(Value::Real(x));
                Some(format!(
                    "r.pk IN (SELECT run_pk FROM series WHERE key = {key} AND count > 0 \
                     AND CAST({column} AS REAL) {op} {x})"
                ))
            }
            Field::Config(key) => {
                let path = self.param(Value::Text(key_path(key)?));
                // SQLite and serde_json may read a decimal a bit apart:
                // compared with this slack, the clause still holds for
                // every value the filter lets through.
                let slack = x.abs() * 1e-12 + 1e-300;
                let bound = |b: &mut Builder, v: f64| b.param(Value::Real(v));
                let numeric = match op {
                    ">" | ">=" => format!("{op} {}", bound(self, x - slack)),
                    "<" | "<=" => format!("{op} {}", bound(self, x + slack)),
                    "=" => format!(
                        "BETWEEN {} AND {}",
                        bound(self, x - slack),
                        bound(self, x + slack)
                    ),
                    _ => "IS NOT NULL".to_string(),
                };
                // A value kept as text may be a float the JSON cannot hold
                // (inf): left for the filter to judge. An integer compares
                // as the f64 it becomes, as the filter compares it.
                Some(format!(
                    "(json_type(r.config, {path}) = 'text' \
                     OR (json_type(r.config, {path}) IN ('integer', 'real') \
                     AND CAST(r.config ->> {path} AS REAL) {numeric}))"
                ))
            }
            _ => None,
        }
    }
}

/// The runs that may match `query` (its project, deletion and filter), when
/// its filter narrows them in SQL.
pub(super) fn candidates(query: &RunQuery) -> Option<Candidates> {
    let mut builder = Builder { params: Vec::new() };
    let filter = builder.clause(query.filter.as_ref()?)?;
    // A filter of hundreds of comparisons would be an expression deeper
    // than SQLite takes; the index answers it instead.
    if builder.params.len() > MAX_PARAMS {
        return None;
    }
    let mut sql = vec![filter];
    if let Some(project) = &query.project {
        let name = builder.param(Value::Text(project.clone()));
        // `+` keeps SQLite from walking the project's index over every
        // run: the narrowing clause is what should pick the rows.
        sql.push(format!(
            "+r.project_id = (SELECT id FROM projects WHERE name = {name})"
        ));
    }
    if let Some(ids) = &query.project_ids {
        // Numbers, so written into the SQL rather than bound; none matches nothing.
        let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
        sql.push(if ids.is_empty() {
            "0".to_string()
        } else {
            format!("+r.project_id IN ({})", ids.join(","))
        });
    }
    match query.deleted {
        Deleted::Exclude => sql.push("r.deleted_ms IS NULL".into()),
        Deleted::Only => sql.push("r.deleted_ms IS NOT NULL".into()),
        Deleted::Include => {}
    }
    Some(Candidates {
        sql: sql.join(" AND "),
        params: builder.params,
    })
}
