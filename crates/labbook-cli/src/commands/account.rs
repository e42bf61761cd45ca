//! `labbook user` and `labbook token`: the accounts a `labbook serve --auth`
//! lets in. Passwords are read without echo (or from stdin with
//! `--password-stdin`) and stored hashed; a token is shown once and stored
//! as its digest (`labbook_server::auth`).

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use labbook_core::account::{ResourceKind, Role};
use labbook_server::auth::{hash_password, new_token};
use labbook_store::Store;

use crate::app::App;
use crate::error::hinted;
use crate::fmt;
use crate::table::{Align, Table};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user who signs in with a password (asked without echo).
    Add(UserNewArgs),
    /// Make a user an admin (who may do everything), or no longer one.
    Admin(UserAdminArgs),
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
pub struct UserNewArgs {
    #[command(flatten)]
    user: UserAddArgs,
    /// An admin may do everything on every project and registered model.
    #[arg(long)]
    admin: bool,
}

#[derive(Debug, Args)]
pub struct UserAdminArgs {
    name: String,
    /// Take the user's admin rights away instead.
    #[arg(long)]
    off: bool,
}

#[derive(Debug, Subcommand)]
pub enum PermCommand {
    /// Give a user a role on a project or registered model (replacing
    /// theirs there): READ, EDIT, MANAGE or NO_PERMISSIONS.
    Set(PermSetArgs),
    /// List the roles given.
    Ls(PermLsArgs),
    /// Take a user's role away: the server's --default-permission applies.
    Rm(PermOnArgs),
}

#[derive(Debug, Args)]
pub struct PermOnArgs {
    user: String,
    /// The project (its name).
    #[arg(long, conflicts_with = "model", required_unless_present = "model")]
    project: Option<String>,
    /// The registered model (its name).
    #[arg(long)]
    model: Option<String>,
}

#[derive(Debug, Args)]
pub struct PermSetArgs {
    #[command(flatten)]
    on: PermOnArgs,
    /// READ, EDIT, MANAGE or NO_PERMISSIONS.
    #[arg(value_parser = parse_role)]
    role: Role,
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub struct PermLsArgs {
    /// Only this user's roles.
    #[arg(long)]
    user: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
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
    let store = app.open_served_store()?.store;
    let mut out = std::io::stdout().lock();
    let paint = app.out();
    match command {
        UserCommand::Add(args) => {
            let password = read_password(&args.user)?;
            let user =
                store.create_user(&args.user.name, &hash_password(&password)?, fmt::now_ms())?;
            if args.admin {
                store.set_admin(&user.name, true)?;
            }
            writeln!(
                out,
                "added {}{}; make them a token with `labbook token create {}`",
                if args.admin { "admin " } else { "user " },
                paint.bold(&user.name),
                user.name
            )?;
        }
        UserCommand::Admin(args) => {
            store.set_admin(&args.name, !args.off)?;
            writeln!(
                out,
                "{} is {} an admin",
                paint.bold(&args.name),
                if args.off { "no longer" } else { "now" }
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
                ("admin".into(), Align::Left),
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
                    if u.admin {
                        paint.good("admin")
                    } else {
                        String::new()
                    },
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
    let store = app.open_served_store()?.store;
    let mut out = std::io::stdout().lock();
    let paint = app.out();
    match command {
        TokenCommand::Create(args) => {
            let (secret, digest) = new_token()?;
            let info = store.create_token(&args.user, &args.name, &digest, fmt::now_ms(), None)?;
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
                    match (t.revoked_ms, t.expires_ms) {
                        (Some(at), _) => paint.dim(&format!("revoked {}", fmt::ago(now, at))),
                        (None, Some(end)) if end <= now => paint.dim("expired"),
                        (None, Some(_)) => paint.good("live (dashboard session)"),
                        (None, None) => paint.good("live"),
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

pub fn perm(app: &App, command: PermCommand) -> Result<ExitCode> {
    let store = app.open_served_store()?.store;
    let mut out = std::io::stdout().lock();
    let paint = app.out();
    match command {
        PermCommand::Set(args) => {
            let (kind, resource, label) = resource_of(&*store, &args.on)?;
            store.set_permission(&args.on.user, kind, &resource, args.role)?;
            writeln!(
                out,
                "{} has {} on {label}",
                paint.bold(&args.on.user),
                paint.bold(args.role.as_str())
            )?;
        }
        PermCommand::Rm(args) => {
            let (kind, resource, label) = resource_of(&*store, &args)?;
            store.remove_permission(&args.user, kind, &resource)?;
            writeln!(
                out,
                "{} has the server's default role on {label} again",
                paint.bold(&args.user)
            )?;
        }
        PermCommand::Ls(args) => {
            let projects: std::collections::HashMap<String, String> = store
                .list_projects()?
                .into_iter()
                .map(|p| (p.project.id.to_string(), p.project.name))
                .collect();
            let rows: Vec<serde_json::Value> = store
                .permissions(args.user.as_deref())?
                .into_iter()
                .map(|p| {
                    let name = match p.kind {
                        ResourceKind::Project => projects
                            .get(&p.resource)
                            .cloned()
                            .unwrap_or_else(|| format!("#{}", p.resource)),
                        ResourceKind::Model => p.resource.clone(),
                    };
                    serde_json::json!({
                        "user": p.user, "kind": p.kind, "name": name,
                        "resource": p.resource, "role": p.role,
                    })
                })
                .collect();
            if args.json {
                return fmt::print_json(&mut out, &rows);
            }
            if rows.is_empty() {
                writeln!(
                    out,
                    "no roles given: every user has the server's --default-permission; give one with `labbook perm set USER ROLE --project P`"
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = Table::new(vec![
                ("user".into(), Align::Left),
                ("on".into(), Align::Left),
                ("name".into(), Align::Left),
                ("role".into(), Align::Left),
            ]);
            for row in &rows {
                let text = |k: &str| row[k].as_str().unwrap_or_default().to_string();
                table.push(vec![text("user"), text("kind"), text("name"), text("role")]);
            }
            for line in table.render(|h| paint.heading(h)) {
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What a `perm` command is about: (kind, the store's key, how to say it).
fn resource_of(store: &dyn Store, on: &PermOnArgs) -> Result<(ResourceKind, String, String)> {
    match (&on.project, &on.model) {
        (Some(name), _) => {
            let project = store.project(labbook_store::ProjectRef::Name(name))?;
            Ok((
                ResourceKind::Project,
                project.id.to_string(),
                format!("project {name}"),
            ))
        }
        (None, Some(name)) => Ok((ResourceKind::Model, name.clone(), format!("model {name}"))),
        (None, None) => Err(hinted(
            "say what the role is on",
            "pass --project NAME or --model NAME",
        )),
    }
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
