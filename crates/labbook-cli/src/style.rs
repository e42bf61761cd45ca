//! Colors. The decision (terminal, NO_COLOR, --no-color) is made once per
//! stream; everything else asks a `Painter`, which is a no-op when off.

use std::io::IsTerminal;

use anstyle::{AnsiColor, Style};
use labbook_core::RunStatus;

/// Whether a stream should get ANSI colors: only a terminal, and only when
/// neither `--no-color` nor NO_COLOR (https://no-color.org) nor TERM=dumb
/// says otherwise.
pub fn color_enabled(no_color_flag: bool, is_terminal: bool) -> bool {
    if no_color_flag || !is_terminal {
        return false;
    }
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

pub fn stdout_color(no_color_flag: bool) -> bool {
    color_enabled(no_color_flag, std::io::stdout().is_terminal())
}

pub fn stderr_color(no_color_flag: bool) -> bool {
    color_enabled(no_color_flag, std::io::stderr().is_terminal())
}

#[derive(Debug, Clone, Copy)]
pub struct Painter {
    on: bool,
}

impl Painter {
    pub fn new(on: bool) -> Self {
        Painter { on }
    }

    pub fn paint(&self, style: Style, text: &str) -> String {
        if self.on {
            format!("{style}{text}{style:#}")
        } else {
            text.to_string()
        }
    }

    pub fn status(&self, status: RunStatus) -> String {
        let color = match status {
            RunStatus::Running => AnsiColor::Blue,
            RunStatus::Finished => AnsiColor::Green,
            RunStatus::Failed => AnsiColor::Red,
            RunStatus::Crashed => AnsiColor::Magenta,
            RunStatus::Killed => AnsiColor::Yellow,
            RunStatus::Pruned => AnsiColor::Cyan,
        };
        self.paint(Style::new().fg_color(Some(color.into())), status.as_str())
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint(Style::new().bold(), text)
    }

    pub fn dim(&self, text: &str) -> String {
        self.paint(Style::new().dimmed(), text)
    }

    pub fn heading(&self, text: &str) -> String {
        self.paint(Style::new().bold().underline(), text)
    }

    pub fn id(&self, text: &str) -> String {
        self.paint(Style::new().fg_color(Some(AnsiColor::Cyan.into())), text)
    }

    pub fn error(&self, text: &str) -> String {
        self.paint(
            Style::new().bold().fg_color(Some(AnsiColor::Red.into())),
            text,
        )
    }

    pub fn warn(&self, text: &str) -> String {
        self.paint(
            Style::new().bold().fg_color(Some(AnsiColor::Yellow.into())),
            text,
        )
    }

    pub fn good(&self, text: &str) -> String {
        self.paint(
            Style::new().bold().fg_color(Some(AnsiColor::Green.into())),
            text,
        )
    }

    pub fn hint(&self, text: &str) -> String {
        self.paint(
            Style::new().bold().fg_color(Some(AnsiColor::Cyan.into())),
            text,
        )
    }
}
