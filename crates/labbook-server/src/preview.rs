//! What the dashboard shows of an artifact, from its name, its size and its
//! first bytes only: a 100 MB CSV is previewed from its first 256 KB, and a
//! file that is not what its name says is described, never decoded.

use serde::Serialize;

/// How much of a file a preview reads.
pub const HEAD_BYTES: u64 = 256 * 1024;
/// Rows of a table shown.
pub const TABLE_ROWS: usize = 200;
/// Columns of a table shown.
pub const TABLE_COLUMNS: usize = 200;
/// The largest image the page loads whole.
pub const MAX_IMAGE_BYTES: u64 = 25 * 1024 * 1024;
/// The largest Parquet file the page reads (it decodes it in the browser).
pub const MAX_PARQUET_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Preview {
    /// The first rows of a CSV or TSV file.
    Table {
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
        /// More rows (or columns) follow than are shown.
        truncated: bool,
    },
    /// Text, with the format it is written in (`json`, `yaml`, `markdown`,
    /// `mlmodel`, `text`).
    Text {
        format: &'static str,
        text: String,
        truncated: bool,
    },
    /// An image the page loads from the raw file.
    Image { media_type: String },
    /// HTML, shown in a sandboxed frame that runs no scripts.
    Html { text: String, truncated: bool },
    /// A Parquet file, decoded by the page from the raw file.
    Parquet,
    /// Nothing to show, and why.
    None { reason: String },
}

fn extension(name: &str) -> String {
    match name.rsplit_once('.') {
        Some((_, ext)) => ext.to_ascii_lowercase(),
        None => String::new(),
    }
}

/// Text a person could read: UTF-8 without NUL bytes. A cut in the middle
/// of a character at the end of the head is not a sign of binary data.
fn as_text(head: &[u8], truncated: bool) -> Option<String> {
    if head.contains(&0) {
        return None;
    }
    match std::str::from_utf8(head) {
        Ok(text) => Some(text.to_string()),
        Err(e) if truncated && e.error_len().is_none() => {
            Some(String::from_utf8_lossy(&head[..e.valid_up_to()]).into_owned())
        }
        Err(_) => None,
    }
}

fn not_text(name: &str) -> Preview {
    Preview::None {
        reason: format!(
            "{name} is not text (it holds binary data), so it is not shown; download it instead"
        ),
    }
}

/// The preview of file `name` of `size` bytes whose first bytes are `head`
/// (at most [`HEAD_BYTES`]).
pub fn preview(name: &str, size: u64, head: &[u8]) -> Preview {
    let truncated = size > head.len() as u64;
    let ext = extension(name);
    match ext.as_str() {
        "png" | "jpg" | "jpeg" | "gif" | "webp" | "bmp" | "svg" => {
            if size > MAX_IMAGE_BYTES {
                return Preview::None {
                    reason: format!(
                        "{name} is {} MB, more than the {} MB an image preview loads; download it instead",
                        size / (1024 * 1024),
                        MAX_IMAGE_BYTES / (1024 * 1024)
                    ),
                };
            }
            Preview::Image {
                media_type: crate::mlflow::media_type(name),
            }
        }
        "parquet" | "pq" => {
            if !head.starts_with(b"PAR1") {
                return Preview::None {
                    reason: format!("{name} is not a Parquet file (it does not start with PAR1)"),
                };
            }
            if size > MAX_PARQUET_BYTES {
                return Preview::None {
                    reason: format!(
                        "{name} is {} MB, more than the {} MB a Parquet preview reads; download it instead",
                        size / (1024 * 1024),
                        MAX_PARQUET_BYTES / (1024 * 1024)
                    ),
                };
            }
            Preview::Parquet
        }
        "csv" | "tsv" => match as_text(head, truncated) {
            Some(text) => table(&text, if ext == "tsv" { b'\t' } else { b',' }, truncated),
            None => not_text(name),
        },
        "html" | "htm" => match as_text(head, truncated) {
            Some(text) => Preview::Html { text, truncated },
            None => not_text(name),
        },
        _ => {
            let format = match ext.as_str() {
                "json" | "ipynb" => "json",
                "yaml" | "yml" => "yaml",
                "md" | "markdown" => "markdown",
                _ if name == "MLmodel" => "mlmodel",
                _ => "text",
            };
            match as_text(head, truncated) {
                Some(text) => Preview::Text {
                    format,
                    text,
                    truncated,
                },
                None => not_text(name),
            }
        }
    }
}

fn table(text: &str, delimiter: u8, truncated_file: bool) -> Preview {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(false)
        .from_reader(text.as_bytes());
    let mut records = Vec::new();
    let mut more = false;
    for record in reader.records() {
        let Ok(record) = record else { break };
        if records.len() > TABLE_ROWS {
            more = true;
            break;
        }
        records.push(record);
    }
    // The last record of a cut file may be cut too.
    if truncated_file && !more {
        records.pop();
    }
    let mut records = records.into_iter();
    let Some(header) = records.next() else {
        return Preview::None {
            reason: "the table is empty".into(),
        };
    };
    let width = header.len();
    let wide = width > TABLE_COLUMNS;
    let cells = |r: &csv::StringRecord| -> Vec<String> {
        r.iter().take(TABLE_COLUMNS).map(str::to_string).collect()
    };
    let columns = cells(&header);
    let rows: Vec<Vec<String>> = records.take(TABLE_ROWS).map(|r| cells(&r)).collect();
    Preview::Table {
        columns,
        rows,
        truncated: more || truncated_file || wide,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_shows_its_header_and_first_rows() {
        let text = "a,b\n1,\"x, y\"\n2,z\n";
        assert_eq!(
            preview("t.csv", text.len() as u64, text.as_bytes()),
            Preview::Table {
                columns: vec!["a".into(), "b".into()],
                rows: vec![
                    vec!["1".into(), "x, y".into()],
                    vec!["2".into(), "z".into()]
                ],
                truncated: false,
            }
        );
    }

    #[test]
    fn a_cut_csv_drops_its_cut_last_row_and_says_more_follow() {
        let text = "a,b\n1,2\n3,4";
        let Preview::Table {
            rows, truncated, ..
        } = preview("t.csv", 1_000_000, text.as_bytes())
        else {
            panic!("not a table")
        };
        assert_eq!(rows, vec![vec!["1".to_string(), "2".to_string()]]);
        assert!(truncated);
    }

    #[test]
    fn binary_garbage_named_like_text_is_described_not_shown() {
        let garbage = [0x89u8, 0x00, 0xff, 0xfe, 0x10];
        for name in ["data.csv", "notes.txt", "page.html", "conf.yaml"] {
            match preview(name, 5, &garbage) {
                Preview::None { reason } => assert!(reason.contains("not text"), "{reason}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(matches!(
            preview("x.parquet", 5, &garbage),
            Preview::None { .. }
        ));
    }

    #[test]
    fn a_huge_image_is_not_loaded() {
        assert!(matches!(
            preview("big.png", 2 << 30, b"\x89PNG"),
            Preview::None { .. }
        ));
        assert_eq!(
            preview("small.png", 10, b"\x89PNG"),
            Preview::Image {
                media_type: "image/png".into()
            }
        );
    }

    #[test]
    fn text_cut_inside_a_character_is_still_text() {
        let text = "héllo".as_bytes();
        let cut = &text[..2];
        assert!(matches!(
            preview("a.md", 100, cut),
            Preview::Text {
                format: "markdown",
                ..
            }
        ));
    }
}
