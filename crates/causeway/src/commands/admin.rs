//! `events` and `token`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use causeway_types::{Clock, EventKind, SystemClock, format_timestamp};

use super::{open, table};
use crate::args::{ProjectArgs, TokenAction};

pub(crate) fn events(dir: &ProjectArgs, kind: Option<&str>) -> Result<ExitCode> {
    let project = open(dir)?;
    let kind = match kind {
        Some(text) => Some(
            EventKind::parse(text)
                .with_context(|| format!("unknown kind `{text}`: use audit, alert, resolved, loop or data"))?,
        ),
        None => None,
    };
    for event in project.meta.events(kind)? {
        println!("{}  {:<8} {:<8} {}", format_timestamp(event.at_ms), event.kind.as_str(), event.actor, event.message);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn token(action: TokenAction) -> Result<ExitCode> {
    match action {
        TokenAction::Create { name, scope, dir } => {
            let project = open(&dir)?;
            let scope = causeway_store::Scope::parse(&scope)
                .with_context(|| format!("unknown scope `{scope}`: use read, write or admin"))?;
            let (token, secret) = project.meta.create_token(&name, scope, SystemClock.now_ms())?;
            eprintln!("created token `{}` with scope {}; its secret is shown once:", token.name, token.scope.as_str());
            println!("{secret}");
        }
        TokenAction::List(dir) => {
            let project = open(&dir)?;
            let mut output = table(&["name", "scope", "created", "state"]);
            for token in project.meta.tokens()? {
                output.add_row(vec![
                    token.name.clone(),
                    token.scope.as_str().to_string(),
                    format_timestamp(token.created_ms),
                    if token.revoked { "revoked".to_string() } else { "live".to_string() },
                ]);
            }
            println!("{output}");
        }
        TokenAction::Revoke { name, dir } => {
            let project = open(&dir)?;
            project.meta.revoke_token(&name)?;
            println!("revoked token `{name}`");
        }
    }
    Ok(ExitCode::SUCCESS)
}
