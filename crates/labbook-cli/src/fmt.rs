//! Human forms of times, durations and numbers.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `850ms`, `4.2s`, `42s`, `3m12s`, `1h04m`, `2d03h`: two units at most,
/// since a listing compares orders of magnitude, not seconds.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    if ms < 10_000 {
        return format!("{:.1}s", ms as f64 / 1000.0);
    }
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{}m{:02}s", s / 60, s % 60),
        3_600..86_400 => format!("{}h{:02}m", s / 3_600, s % 3_600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3_600),
    }
}

/// `just now`, `42s ago`, `3m ago`, `2h ago`, `5d ago`; a date past two
/// months, where "63d ago" stops meaning much.
pub fn ago(now_ms: i64, then_ms: i64) -> String {
    let s = (now_ms - then_ms) / 1000;
    match s {
        i64::MIN..5 => "just now".into(),
        5..60 => format!("{s}s ago"),
        60..3_600 => format!("{}m ago", s / 60),
        3_600..172_800 => format!("{}h ago", s / 3_600),
        172_800..5_184_000 => format!("{}d ago", s / 86_400),
        _ => date(then_ms),
    }
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `2026-11-22T08:11:08Z`.
pub fn iso_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        t / 3_600,
        t % 3_600 / 60,
        t % 60
    )
}

/// `2026-11-22`.
pub fn date(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(1000).div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// A metric value for a table: about four significant digits, scientific
/// outside [1e-3, 1e6), no trailing zeros.
/// A size in bytes as people read it: 812 B, 27 KB, 1.4 MB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 10.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub fn number(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return "0".into();
    }
    let magnitude = v.abs().log10().floor() as i32;
    if !(-3..6).contains(&magnitude) {
        let text = format!("{v:.3e}");
        // `1.500e-5` → `1.5e-5`
        return match text.split_once('e') {
            Some((mantissa, exp)) => format!("{}e{exp}", trim_zeros(mantissa)),
            None => text,
        };
    }
    let decimals = (3 - magnitude).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}")).to_string()
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// A signal's usual name, for messages.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return format!("signal {signal}"),
    };
    name.to_string()
}

/// The local time zone's offset from UTC at `ms`, in milliseconds.
pub fn local_offset_ms(ms: i64) -> i64 {
    let secs = ms.div_euclid(1000) as libc::time_t;
    // SAFETY: localtime_r reads the time and writes only into `tm`, a
    // zeroed, properly aligned `libc::tm` we own; it is thread-safe (unlike
    // localtime) and returns null on failure, which we check.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff * 1000
    }
}

/// Writes `value` as the one pretty-printed JSON document of a `--json`
/// command, and the command's success.
pub fn print_json(
    out: &mut impl std::io::Write,
    value: &impl serde::Serialize,
) -> anyhow::Result<std::process::ExitCode> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_use_two_units_at_most() {
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(4_250), "4.2s");
        assert_eq!(duration(42_000), "42s");
        assert_eq!(duration(192_000), "3m12s");
        assert_eq!(duration(3_840_000), "1h04m");
        assert_eq!(duration(2 * 86_400_000 + 3 * 3_600_000), "2d03h");
    }

    #[test]
    fn relative_times() {
        let now = 1_800_000_000_000;
        assert_eq!(ago(now, now - 1_000), "just now");
        assert_eq!(ago(now, now - 180_000), "3m ago");
        assert_eq!(ago(now, now - 2 * 3_600_000), "2h ago");
        assert_eq!(ago(now, now - 5 * 86_400_000), "5d ago");
        assert_eq!(ago(now, 0), "1970-01-01");
    }

    #[test]
    fn iso_times_are_utc() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(iso_utc(1_795_000_000_123), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(number(0.123_456), "0.1235");
        assert_eq!(number(123.456), "123.5");
        assert_eq!(number(2.0), "2");
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(12_345.0), "12345");
        assert_eq!(number(1.5e-5), "1.5e-5");
        assert_eq!(number(2.5e7), "2.5e7");
        assert_eq!(number(-0.001_234_56), "-0.001235");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::NEG_INFINITY), "-inf");
    }
}
