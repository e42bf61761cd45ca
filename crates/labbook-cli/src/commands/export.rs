//! `labbook export RUN`: a run's full metric history, in long format
//! (one row per key and step), as CSV, JSON or Parquet.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use labbook_core::{RunRecord, SeriesColumns};
use labbook_store::{StepRange, Store};
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use crate::app::{App, resolve};
use crate::error::hinted;
use crate::{ExportArgs, ExportFormat};

/// Rows per Parquet row group: large enough for good compression and
/// few groups, small enough to bound the memory of one group.
const ROW_GROUP_ROWS: usize = 1 << 20;

const PARQUET_SCHEMA: &str = "
message metrics {
    REQUIRED BYTE_ARRAY key (UTF8);
    REQUIRED INT64 step;
    REQUIRED INT64 timestamp_ms;
    REQUIRED DOUBLE value;
}";

pub fn run(app: &App, args: ExportArgs) -> Result<ExitCode> {
    let format = args
        .format
        .or_else(|| args.output.as_deref().and_then(format_from_extension))
        .unwrap_or(ExportFormat::Csv);
    if format == ExportFormat::Parquet && args.output.is_none() && std::io::stdout().is_terminal() {
        return Err(hinted(
            "Parquet is binary; not writing it to a terminal",
            "use --output FILE, or redirect stdout to a file",
        ));
    }
    let (store, _) = app.open_existing()?;
    let run = resolve(&*store, &args.run)?;
    let keys = select_keys(&*store, &run, &args.keys)?;

    match &args.output {
        Some(path) => write_file(path, |w| export(&*store, &run, &keys, format, w))?,
        None => {
            let mut out = BufWriter::new(std::io::stdout());
            export(&*store, &run, &keys, format, &mut out)?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn format_from_extension(path: &Path) -> Option<ExportFormat> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "csv" => Some(ExportFormat::Csv),
        "json" => Some(ExportFormat::Json),
        "parquet" | "pq" => Some(ExportFormat::Parquet),
        _ => None,
    }
}

/// The keys to export, in key order: all of the run's, or the requested
/// ones after checking that each exists.
fn select_keys(store: &dyn Store, run: &RunRecord, wanted: &[String]) -> Result<Vec<String>> {
    let all: Vec<String> = store
        .series_keys(&run.id)?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    if wanted.is_empty() {
        return Ok(all);
    }
    let mut keys = BTreeSet::new();
    for key in wanted {
        if !all.contains(key) {
            let known = if all.is_empty() {
                "it has no metrics".to_string()
            } else {
                format!("its metrics: {}", preview(&all))
            };
            return Err(hinted(
                format!("run {} has no metric {key:?}", run.id),
                known,
            ));
        }
        keys.insert(key.clone());
    }
    Ok(keys.into_iter().collect())
}

fn preview(keys: &[String]) -> String {
    const SHOWN: usize = 8;
    let mut text = keys
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > SHOWN {
        text.push_str(&format!(" and {} more", keys.len() - SHOWN));
    }
    text
}

/// Writes through a temporary file renamed into place, so a failed export
/// never leaves a truncated file that looks complete.
fn write_file(path: &Path, write: impl FnOnce(&mut BufWriter<File>) -> Result<()>) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("--output {} is not a file name", path.display()))?;
    let tmp: PathBuf = path.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        let file =
            File::create(&tmp).with_context(|| format!("cannot create {}", path.display()))?;
        let mut w = BufWriter::new(file);
        write(&mut w)?;
        let file = w
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.sync_all()
            .with_context(|| format!("cannot write {}", path.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn export<W: Write + Send>(
    store: &dyn Store,
    run: &RunRecord,
    keys: &[String],
    format: ExportFormat,
    w: &mut W,
) -> Result<()> {
    let read = |key: &str| -> Result<SeriesColumns> {
        store
            .read_series(&run.id, key, StepRange::ALL)
            .with_context(|| format!("cannot read metric {key:?}"))
    };
    match format {
        ExportFormat::Csv => write_csv(keys, read, w),
        ExportFormat::Json => write_json(run, keys, read, w),
        ExportFormat::Parquet => write_parquet(keys, read, w),
    }
}

/// A CSV field, quoted per RFC 4180 when it holds a comma, quote or line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Shortest round-trip form; `NaN`, `inf`, `-inf` for the non-finite
/// (what pandas and Python's float() read back).
fn csv_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        // Debug, unlike Display, switches to exponents for very large and
        // small values instead of printing hundreds of digits.
        format!("{v:?}")
    }
}

fn write_csv(
    keys: &[String],
    read: impl Fn(&str) -> Result<SeriesColumns>,
    w: &mut impl Write,
) -> Result<()> {
    writeln!(w, "key,step,timestamp_ms,value")?;
    for key in keys {
        let series = read(key)?;
        let field = csv_field(key);
        for i in 0..series.len() {
            writeln!(
                w,
                "{field},{},{},{}",
                series.steps[i],
                series.ts_ms[i],
                csv_float(series.values[i])
            )?;
        }
    }
    Ok(())
}

fn write_json(
    run: &RunRecord,
    keys: &[String],
    read: impl Fn(&str) -> Result<SeriesColumns>,
    w: &mut impl Write,
) -> Result<()> {
    // Streamed one series at a time: a run with millions of points should
    // not be held as a JSON tree.
    w.write_all(b"{\"run\":")?;
    serde_json::to_writer(&mut *w, run)?;
    w.write_all(b",\"metrics\":{")?;
    for (n, key) in keys.iter().enumerate() {
        let series = read(key)?;
        if n > 0 {
            w.write_all(b",")?;
        }
        serde_json::to_writer(&mut *w, key)?;
        w.write_all(b":{\"steps\":")?;
        serde_json::to_writer(&mut *w, &series.steps)?;
        w.write_all(b",\"timestamps_ms\":")?;
        serde_json::to_writer(&mut *w, &series.ts_ms)?;
        w.write_all(b",\"values\":[")?;
        for (i, v) in series.values.iter().enumerate() {
            if i > 0 {
                w.write_all(b",")?;
            }
            if v.is_finite() {
                serde_json::to_writer(&mut *w, v)?;
            } else {
                // JSON has no NaN; MLflow's strings, as labbook uses elsewhere.
                serde_json::to_writer(&mut *w, &labbook_core::config::format_float(*v))?;
            }
        }
        w.write_all(b"]}")?;
    }
    w.write_all(b"}}\n")?;
    Ok(())
}

#[derive(Default)]
struct RowGroup {
    keys: Vec<ByteArray>,
    steps: Vec<i64>,
    ts_ms: Vec<i64>,
    values: Vec<f64>,
}

impl RowGroup {
    fn len(&self) -> usize {
        self.steps.len()
    }
}

fn write_parquet<W: Write + Send>(
    keys: &[String],
    read: impl Fn(&str) -> Result<SeriesColumns>,
    w: &mut W,
) -> Result<()> {
    let schema = Arc::new(parse_message_type(PARQUET_SCHEMA).context("parquet schema")?);
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("labbook {}", env!("CARGO_PKG_VERSION")))
            .build(),
    );
    let mut writer = SerializedFileWriter::new(w, schema, props)?;
    let mut group = RowGroup::default();
    for key in keys {
        let series = read(key)?;
        let name = ByteArray::from(key.as_str());
        let mut start = 0;
        while start < series.len() {
            let end = (start + ROW_GROUP_ROWS - group.len()).min(series.len());
            group
                .keys
                .extend(std::iter::repeat_n(name.clone(), end - start));
            group.steps.extend_from_slice(&series.steps[start..end]);
            group.ts_ms.extend_from_slice(&series.ts_ms[start..end]);
            group.values.extend_from_slice(&series.values[start..end]);
            start = end;
            if group.len() >= ROW_GROUP_ROWS {
                flush_group(&mut writer, std::mem::take(&mut group))?;
            }
        }
    }
    if group.len() > 0 {
        flush_group(&mut writer, group)?;
    }
    writer.close()?;
    Ok(())
}

fn flush_group<W: Write + Send>(
    writer: &mut SerializedFileWriter<W>,
    group: RowGroup,
) -> Result<()> {
    let mut rows = writer.next_row_group()?;
    let mut index = 0;
    while let Some(mut column) = rows.next_column()? {
        match index {
            0 => {
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&group.keys, None, None)?;
            }
            1 => {
                column
                    .typed::<Int64Type>()
                    .write_batch(&group.steps, None, None)?;
            }
            2 => {
                column
                    .typed::<Int64Type>()
                    .write_batch(&group.ts_ms, None, None)?;
            }
            _ => {
                column
                    .typed::<DoubleType>()
                    .write_batch(&group.values, None, None)?;
            }
        }
        column.close()?;
        index += 1;
    }
    rows.close()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_only_when_needed() {
        assert_eq!(csv_field("train/loss"), "train/loss");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn csv_floats_round_trip() {
        assert_eq!(csv_float(0.1), "0.1");
        assert_eq!(csv_float(1e300), "1e300");
        assert_eq!(csv_float(f64::NAN), "NaN");
        assert_eq!(csv_float(f64::NEG_INFINITY), "-inf");
        assert_eq!(csv_float(2.0), "2.0");
    }
}
