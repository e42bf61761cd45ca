//! A sweep's `command`, with W&B's macros expanded as W&B's agent expands
//! them: a word that is exactly `${args}` becomes one word per parameter
//! (`--lr=0.001`), values written as Python's `str()` writes them (`True`,
//! `None`, `1e-05`, `{'b': 0}`), since that is what the programs W&B users
//! bring were written to parse. `${envvar:NAME}` works anywhere inside a
//! word and, as in W&B, becomes `NAME` itself when the variable is unset.
//! An unknown macro is an error (W&B drops it silently).

use serde_json::{Map, Value};

/// The macros a word may be exactly.
pub const MACROS: &[&str] = &[
    "${env}",
    "${interpreter}",
    "${program}",
    "${args}",
    "${args_no_hyphens}",
    "${args_no_boolean_flags}",
    "${args_no_equals}",
    "${args_json}",
    "${args_json_file}",
    "${args_append_hydra}",
    "${args_override_hydra}",
];

/// Checks one word of a command: every `${…}` in it is a known macro.
pub fn check_word(word: &str) -> Result<(), String> {
    if MACROS.contains(&word) {
        return Ok(());
    }
    let mut rest = word;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!(
                "{word:?} opens a macro with ${{ and never closes it"
            ));
        };
        let inner = &after[..end];
        match inner.strip_prefix("envvar:") {
            Some(name)
                if !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') => {}
            Some(name) => {
                return Err(format!(
                    "${{envvar:{name}}}: an environment variable's name is upper-case letters, digits and _"
                ));
            }
            None => {
                let whole = format!("${{{inner}}}");
                return Err(if MACROS.contains(&whole.as_str()) {
                    format!("{whole} must be a word of its own, not part of {word:?}")
                } else {
                    format!(
                        "unknown macro {whole}; known: {}, ${{envvar:NAME}}",
                        MACROS.join(", ")
                    )
                });
            }
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

/// What the macros expand to for one trial.
pub struct Context<'a> {
    pub program: Option<&'a str>,
    /// The trial's parameters as the program gets them (a nested group as
    /// one mapping), sorted by key.
    pub args: &'a Map<String, Value>,
    /// Where `${args_json_file}` points; the caller writes the file.
    pub args_json_file: Option<&'a str>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// Whether a command needs the JSON file of `${args_json_file}` written.
pub fn needs_json_file(command: &[String]) -> bool {
    command.iter().any(|w| w == "${args_json_file}")
}

/// The command's words for one trial.
pub fn expand(command: &[String], ctx: &Context<'_>) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for word in command {
        check_word(word)?;
        let word = expand_envvars(word, ctx.env);
        let each = |f: &dyn Fn(&str, &Value) -> Vec<String>, out: &mut Vec<String>| {
            for (k, v) in ctx.args {
                out.extend(f(k, v));
            }
        };
        match word.as_str() {
            "${env}" => out.push("/usr/bin/env".into()),
            "${interpreter}" => out.push("python".into()),
            "${program}" => out.push(
                ctx.program
                    .ok_or("the command uses ${program} but the sweep has no program")?
                    .to_string(),
            ),
            "${args}" => each(&|k, v| vec![format!("--{k}={}", python_str(v))], &mut out),
            "${args_no_hyphens}" => each(&|k, v| vec![format!("{k}={}", python_str(v))], &mut out),
            "${args_no_boolean_flags}" => each(
                &|k, v| match v {
                    Value::Bool(true) => vec![format!("--{k}")],
                    Value::Bool(false) => vec![],
                    _ => vec![format!("--{k}={}", python_str(v))],
                },
                &mut out,
            ),
            "${args_no_equals}" => each(&|k, v| vec![format!("--{k}"), python_str(v)], &mut out),
            "${args_append_hydra}" => {
                each(&|k, v| vec![format!("+{k}={}", python_str(v))], &mut out)
            }
            "${args_override_hydra}" => {
                each(&|k, v| vec![format!("++{k}={}", python_str(v))], &mut out)
            }
            "${args_json}" => out.push(args_json(ctx.args)),
            "${args_json_file}" => out.push(
                ctx.args_json_file
                    .ok_or("the command uses ${args_json_file} but no file was written")?
                    .to_string(),
            ),
            _ => out.push(word),
        }
    }
    Ok(out)
}

fn expand_envvars(word: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(start) = rest.find("${envvar:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "${envvar:".len()..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                out.push_str(&env(name).unwrap_or_else(|| name.to_string()));
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// `${args_json}`: Python's `json.dumps` with its default separators.
pub fn args_json(args: &Map<String, Value>) -> String {
    let mut out = String::new();
    write_json(&Value::Object(args.clone()), &mut out);
    out
}

fn write_json(v: &Value, out: &mut String) {
    match v {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(": ");
                write_json(item, out);
            }
            out.push('}');
        }
        Value::Number(n) if n.is_f64() => out.push_str(&python_float(n.as_f64().unwrap_or(0.0))),
        other => out.push_str(&other.to_string()),
    }
}

/// A value as Python's `str()` writes it.
pub fn python_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => python_repr(other),
    }
}

fn python_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => match n
            .as_i64()
            .map(|i| i.to_string())
            .or_else(|| n.as_u64().map(|u| u.to_string()))
        {
            Some(i) if !n.is_f64() => i,
            _ => python_float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => python_string_repr(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(python_repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", python_string_repr(k), python_repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// Python's `repr` of a string: single quotes unless the string holds one
/// and no double quote.
fn python_string_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// A float as Python's `repr` writes it: the shortest digits that read
/// back the same, positional for exponents −4 to 15, else `1e-05` style.
pub fn python_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "1.5e-7".
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let s = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            let (a, b) = digits.split_at(point as usize);
            format!("{a}.{b}")
        };
        format!("{sign}{s}")
    } else {
        let m = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{m}e{esign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args() -> Map<String, Value> {
        let v = json!({
            "flag": true, "layers": [64, "a", 1.5], "lr": 0.001, "nest": {"b": 0, "q": true},
            "none": null, "off": false, "opt": "adam"
        });
        v.as_object().cloned().unwrap_or_default()
    }

    fn run(cmd: &[&str], env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<String>, String> {
        let args = args();
        let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        expand(
            &cmd,
            &Context {
                program: Some("train.py"),
                args: &args,
                args_json_file: Some("/tmp/x/config-abc.json"),
                env,
            },
        )
    }

    #[test]
    fn python_floats_print_as_python_does() {
        let cases = [
            (0.001, "0.001"),
            (1e-5, "1e-05"),
            (1e16, "1e+16"),
            (7.0, "7.0"),
            (0.0001, "0.0001"),
            (123456789012345.6, "123456789012345.6"),
            (1.5e-7, "1.5e-07"),
            (-2.5, "-2.5"),
            (0.30000000000000004, "0.30000000000000004"),
            (1e300, "1e+300"),
        ];
        for (x, want) in cases {
            assert_eq!(python_float(x), want, "{x}");
        }
    }

    #[test]
    fn every_macro_as_w_and_b_expands_it() {
        let none = |_: &str| None;
        let words = run(
            &["${env}", "${interpreter}", "${program}", "${args}"],
            &none,
        )
        .unwrap();
        assert_eq!(
            words,
            [
                "/usr/bin/env",
                "python",
                "train.py",
                "--flag=True",
                "--layers=[64, 'a', 1.5]",
                "--lr=0.001",
                "--nest={'b': 0, 'q': True}",
                "--none=None",
                "--off=False",
                "--opt=adam"
            ]
        );
        let words = run(&["${args_no_hyphens}"], &none).unwrap();
        assert_eq!(words[2], "lr=0.001");
        let words = run(&["${args_no_boolean_flags}"], &none).unwrap();
        assert_eq!(words[0], "--flag");
        assert!(!words.iter().any(|w| w.starts_with("--off")));
        let words = run(&["${args_json}"], &none).unwrap();
        assert_eq!(
            words,
            [
                r#"{"flag": true, "layers": [64, "a", 1.5], "lr": 0.001, "nest": {"b": 0, "q": true}, "none": null, "off": false, "opt": "adam"}"#
            ]
        );
        assert_eq!(
            run(&["${args_json_file}"], &none).unwrap(),
            ["/tmp/x/config-abc.json"]
        );
        let words = run(&["${args_no_equals}"], &none).unwrap();
        assert_eq!(&words[..2], ["--flag", "True"]);
        assert_eq!(
            run(&["${args_override_hydra}"], &none).unwrap()[2],
            "++lr=0.001"
        );
    }

    #[test]
    fn envvars_expand_inside_words_and_unset_ones_name_themselves() {
        let env = |name: &str| (name == "DATA").then(|| "/d".to_string());
        assert_eq!(
            run(&["--data=${envvar:DATA}/x"], &env).unwrap(),
            ["--data=/d/x"]
        );
        assert_eq!(
            run(&["--data=${envvar:NOPE}/x"], &env).unwrap(),
            ["--data=NOPE/x"]
        );
    }

    #[test]
    fn unknown_and_embedded_macros_are_errors() {
        assert!(
            check_word("${argz}")
                .unwrap_err()
                .contains("unknown macro ${argz}")
        );
        assert!(
            check_word("--bs=${batch_size}")
                .unwrap_err()
                .contains("unknown macro")
        );
        assert!(
            check_word("x${args}")
                .unwrap_err()
                .contains("word of its own")
        );
        assert!(check_word("${envvar:lower}").is_err());
        assert!(check_word("${oops").is_err());
        assert!(check_word("plain").is_ok());
    }
}
