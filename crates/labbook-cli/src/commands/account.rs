//! `labbook user` and `labbook token`: the accounts a `labbook serve --auth`
//! lets in. Passwords are read without echo (or from stdin with
//! `--password-stdin`) and stored hashed; a token is shown once and stored
//! as its digest (`labbook_server::auth`).

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use labbook_server::auth::{hash_password, new_token};
use labbook_store::Store;

use crate::app::App;
use crate::error::hinted;
use crate::fmt;
use crate::table::{Align, Table};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user who signs in with a password (asked without echo).
    Add(UserAddArgs),
    /// List the users.
    Ls(JsonArgs),
    /// Remove a user and every token of theirs.
    Rm(UserNameArgs),
    /// Set a user's password.
    Passwd(UserAddArgs),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make an API token for a user; it is shown once, never again.
    Create(TokenCreateArgs),
    /// List tokens (never the tokens themselves).
    Ls(TokenLsArgs),
    /// Revoke a token: it is refused from the next request on.
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
pub struct UserAddArgs {
    name: String,
    /// Read the password from the first line of stdin (for scripts).
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct UserNameArgs {
    name: String,
}

#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// The user the token signs in as.
    user: String,
    /// What the token is for ("cluster", "laptop").
    #[arg(long, default_value = "token")]
    name: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct TokenLsArgs {
    /// Only this user's tokens.
    #[arg(long)]
    user: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The token's id (from `labbook token ls`).
    id: i64,
}

pub fn user(app: &App, command: UserCommand) -> Result<ExitCode> {
    let store = crate::app::open_store(&app.store_dir_for_run())?;
    let mut out = std::io::stdout().lock();
    let paint = app.out();
    match command {
        UserCommand::Add(args) => {
            let password = read_password(&args)?;
            let user = store.create_user(&args.name, &hash_password(&password)?, fmt::now_ms())?;
            writeln!(
                out,
                "added user {}; make them a token with `labbook token create {}`",
                paint.bold(&user.name),
                user.name
            )?;
        }
        UserCommand::Passwd(args) => {
            let password = read_password(&args)?;
            store.set_password(&args.name, &hash_password(&password)?)?;
            writeln!(out, "set the password of {}", paint.bold(&args.name))?;
        }
        UserCommand::Rm(args) => {
            let tokens = store.tokens(Some(&args.name))?.len();
            store.delete_user(&args.name)?;
            writeln!(
                out,
                "removed user {} and {tokens} token(s) of theirs",
                paint.bold(&args.name)
            )?;
        }
        UserCommand::Ls(args) => {
            let users = store.users()?;
            if args.json {
                return fmt::print_json(&mut out, &users);
            }
            let tokens = store.tokens(None)?;
            let now = fmt::now_ms();
            let mut table = Table::new(vec![
                ("user".into(), Align::Left),
                ("tokens".into(), Align::Right),
                ("added".into(), Align::Left),
            ]);
            for u in &users {
                let live = tokens
                    .iter()
                    .filter(|t| t.user == u.name && t.revoked_ms.is_none())
                    .count();
                table.push(vec![
                    u.name.clone(),
                    live.to_string(),
                    fmt::ago(now, u.created_ms),
                ]);
            }
            if users.is_empty() {
                writeln!(out, "no users yet: add one with `labbook user add NAME`")?;
            } else {
                for line in table.render(|h| paint.heading(h)) {
                    writeln!(out, "{line}")?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn token(app: &App, command: TokenCommand) -> Result<ExitCode> {
    let store = crate::app::open_store(&app.store_dir_for_run())?;
    let mut out = std::io::stdout().lock();
    let paint = app.out();
    match command {
        TokenCommand::Create(args) => {
            let (secret, digest) = new_token()?;
            let info = store.create_token(&args.user, &args.name, &digest, fmt::now_ms())?;
            if args.json {
                return fmt::print_json(
                    &mut out,
                    &serde_json::json!({ "token": secret, "id": info.id, "user": info.user, "name": info.name }),
                );
            }
            writeln!(out, "{secret}")?;
            say!(
                "{}",
                paint.dim(&format!(
                    "token {} for {}: shown once, keep it secret; use it as LABBOOK_TOKEN or MLFLOW_TRACKING_TOKEN",
                    info.id, info.user
                ))
            );
        }
        TokenCommand::Ls(args) => {
            let tokens = store.tokens(args.user.as_deref())?;
            if args.json {
                return fmt::print_json(&mut out, &tokens);
            }
            let now = fmt::now_ms();
            let mut table = Table::new(vec![
                ("id".into(), Align::Right),
                ("user".into(), Align::Left),
                ("name".into(), Align::Left),
                ("made".into(), Align::Left),
                ("state".into(), Align::Left),
            ]);
            for t in &tokens {
                table.push(vec![
                    t.id.to_string(),
                    t.user.clone(),
                    t.name.clone(),
                    fmt::ago(now, t.created_ms),
                    match t.revoked_ms {
                        Some(at) => paint.dim(&format!("revoked {}", fmt::ago(now, at))),
                        None => paint.good("live"),
                    },
                ]);
            }
            if tokens.is_empty() {
                writeln!(out, "no tokens: make one with `labbook token create USER`")?;
            } else {
                for line in table.render(|h| paint.heading(h)) {
                    writeln!(out, "{line}")?;
                }
            }
        }
        TokenCommand::Revoke(args) => {
            let info = store.revoke_token(args.id, fmt::now_ms())?;
            writeln!(
                out,
                "revoked token {} ({}) of {}",
                info.id,
                info.name,
                paint.bold(&info.user)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The password: one line of stdin with --password-stdin, else asked
/// twice on the terminal without echo.
fn read_password(args: &UserAddArgs) -> Result<String> {
    if args.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_string());
    }
    if !std::io::stdin().is_terminal() {
        return Err(hinted(
            "no terminal to ask the password on",
            "pipe it in with --password-stdin",
        ));
    }
    let first = rpassword::prompt_password(format!("password for {}: ", args.name))?;
    let again = rpassword::prompt_password("again: ")?;
    if first != again {
        return Err(hinted("the two passwords differ", "run the command again"));
    }
    Ok(first)
}
