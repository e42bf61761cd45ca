//! A small aligned-table printer. Cells may carry ANSI styles, so widths are
//! measured on the visible text only, in terminal columns (a CJK character
//! takes two).

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Terminal columns `s` occupies, ANSI escape sequences excluded.
pub fn display_width(s: &str) -> usize {
    if !s.contains('\x1b') {
        return s.width();
    }
    strip_ansi(s).width()
}

/// `s` without CSI escape sequences (`ESC [ … final-byte`), the only kind
/// this program emits.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `s` cut to at most `width` columns, ending in `…` when cut. Control
/// characters (a note's newlines) become spaces so one cell stays one line.
pub fn truncate(s: &str, width: usize) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.width() <= width {
        return s;
    }
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > width - 1 {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

pub struct Table {
    headers: Vec<String>,
    aligns: Vec<Align>,
    rows: Vec<Vec<String>>,
}

const GAP: &str = "  ";

impl Table {
    pub fn new(columns: Vec<(String, Align)>) -> Self {
        let (headers, aligns) = columns.into_iter().unzip();
        Table {
            headers,
            aligns,
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// Replaces each row's last cell, in order.
    pub fn set_last_column(&mut self, cells: impl IntoIterator<Item = String>) {
        for (row, cell) in self.rows.iter_mut().zip(cells) {
            if let Some(last) = row.last_mut() {
                *last = cell;
            }
        }
    }

    fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| display_width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(display_width(cell));
            }
        }
        widths
    }

    /// Columns taken by every column but the last, gaps included: what the
    /// last (free-text) column has to fit beside.
    pub fn width_before_last(&self) -> usize {
        let widths = self.widths();
        let n = widths.len();
        if n == 0 {
            return 0;
        }
        widths[..n - 1].iter().sum::<usize>() + GAP.len() * (n - 1)
    }

    /// The rendered lines; `style_header` styles header cells after layout.
    pub fn render(&self, style_header: impl Fn(&str) -> String) -> Vec<String> {
        let widths = self.widths();
        let mut lines = Vec::with_capacity(self.rows.len() + 1);
        let header: Vec<String> = self.headers.iter().map(|h| style_header(h)).collect();
        lines.push(self.line(&header, &self.headers, &widths));
        for row in &self.rows {
            lines.push(self.line(row, row, &widths));
        }
        lines
    }

    fn line(&self, cells: &[String], plain: &[String], widths: &[usize]) -> String {
        let mut out = String::new();
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            let visible = plain.get(i).map_or(0, |p| display_width(p));
            let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(visible);
            if i > 0 {
                out.push_str(GAP);
            }
            match self.aligns.get(i).copied().unwrap_or(Align::Left) {
                Align::Right => {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                }
                Align::Left => {
                    out.push_str(cell);
                    // No trailing blanks after the last column.
                    if i != last {
                        out.push_str(&" ".repeat(pad));
                    }
                }
            }
        }
        out.truncate(out.trim_end_matches(' ').len());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_ignore_ansi_and_count_wide_chars() {
        assert_eq!(display_width("\x1b[32mfinished\x1b[0m"), 8);
        assert_eq!(display_width("学习率"), 6);
        assert_eq!(strip_ansi("a\x1b[1;4mb\x1b[0mc"), "abc");
    }

    #[test]
    fn truncation_marks_the_cut() {
        assert_eq!(truncate("hello world", 5), "hell…");
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("a\nb", 10), "a b");
        assert_eq!(truncate("学习率很高", 5), "学习…");
    }

    #[test]
    fn columns_align_on_visible_width() {
        let mut t = Table::new(vec![
            ("NAME".into(), Align::Left),
            ("N".into(), Align::Right),
            ("NOTE".into(), Align::Left),
        ]);
        t.push(vec!["\x1b[31mab\x1b[0m".into(), "1".into(), "x".into()]);
        t.push(vec!["abcd".into(), "100".into(), "".into()]);
        let lines: Vec<String> = t
            .render(|h| h.to_string())
            .iter()
            .map(|l| strip_ansi(l))
            .collect();
        assert_eq!(lines, vec!["NAME    N  NOTE", "ab      1  x", "abcd  100"]);
    }
}
