//! `keel health` and `keel ctl`: clients of running Keel servers.

use std::process::ExitCode;
use std::time::Duration;

use keel_server::{HealthSource, HttpHealthSource};

mod commands;
mod table;

pub use commands::Ctx;

use crate::cli::{ConfigCommand, CtlArgs, CtlCommand, HealthArgs, RoutesAction};
use crate::settings::{Settings, parse_duration};

/// Appends `/actuator/health` to a bare base URL.
fn health_url(base: &str) -> String {
    let trimmed = base.trim_end_matches('/');
    if trimmed.ends_with("/actuator/health")
        || trimmed.ends_with("/liveness")
        || trimmed.ends_with("/readiness")
    {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/actuator/health")
    }
}

/// Exit 0 when UP, 1 when DOWN or unreachable, 2 on a bad argument.
pub async fn health_check(args: &HealthArgs) -> anyhow::Result<ExitCode> {
    let timeout = match parse_duration(&args.timeout) {
        Ok(t) => t,
        Err(reason) => {
            eprintln!("error: invalid --timeout `{}`: {reason}", args.timeout);
            return Ok(ExitCode::from(2));
        }
    };
    let url = health_url(&args.url);
    let source = match HttpHealthSource::new(&url, timeout) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    match source.health().await {
        Ok(report) if report.status.is_up() => {
            println!("UP");
            Ok(ExitCode::SUCCESS)
        }
        Ok(report) => {
            println!("{:?}", report.status);
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

pub async fn run(args: &CtlArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::new(args, settings);
    let result = match &args.command {
        CtlCommand::Health => return health_table(args.json, settings).await,
        CtlCommand::Apps => commands::apps(&ctx).await,
        CtlCommand::Instances { app } => commands::instances(&ctx, app).await,
        CtlCommand::Status { app, id, status } => commands::status(&ctx, app, id, status).await,
        CtlCommand::Routes { action: None } => commands::routes(&ctx).await,
        CtlCommand::Routes {
            action: Some(RoutesAction::Apply { file, dry_run }),
        } => commands::routes_apply(&ctx, file, *dry_run).await,
        CtlCommand::Config(ConfigCommand::Get {
            app,
            profile,
            label,
        }) => commands::config_get(&ctx, app, profile, label.as_deref()).await,
        CtlCommand::Config(ConfigCommand::History { app }) => {
            commands::config_history(&ctx, app).await
        }
        CtlCommand::Config(ConfigCommand::Diff {
            from,
            to,
            app,
            profile,
        }) => commands::config_diff(&ctx, from, to, app, profile).await,
        CtlCommand::Breakers => commands::breakers(&ctx).await,
    };
    Ok(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(e.exit_code())
        }
    })
}

async fn health_table(json: bool, settings: &Settings) -> anyhow::Result<ExitCode> {
    let targets = [
        ("registry", &settings.registry_url),
        ("config", &settings.config_url),
        ("gateway", &settings.gateway_url),
    ];
    let mut rows = Vec::new();
    let mut all_up = true;
    for (name, base) in targets {
        let url = health_url(base);
        let status = match HttpHealthSource::new(&url, Duration::from_secs(3)) {
            Ok(source) => match source.health().await {
                Ok(report) => format!("{:?}", report.status).to_uppercase(),
                Err(e) => format!("UNREACHABLE ({e})"),
            },
            Err(e) => format!("BAD URL ({e})"),
        };
        all_up &= status == "UP";
        rows.push((name, url, status));
    }
    if json {
        let value: serde_json::Value = rows
            .iter()
            .map(|(n, u, s)| (n.to_string(), serde_json::json!({"url": u, "status": s})))
            .collect::<serde_json::Map<_, _>>()
            .into();
        println!("{value:#}");
    } else {
        println!("{:<10} {:<40} STATUS", "COMPONENT", "URL");
        for (n, u, s) in &rows {
            println!("{n:<10} {u:<40} {s}");
        }
    }
    Ok(if all_up {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
