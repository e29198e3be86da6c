//! The `keel ctl` commands: each reads or changes a component through the dashboard's HTTP views
//! and prints a table, or JSON with `--json`.

use std::path::Path;
use std::time::Duration;

use keel_dashboard::{
    BreakerView, ConfigClient, ConfigView, Credentials, GatewayClient, GatewayView, HttpRegistry,
    RegistryView, SourceError, Transport,
};
use keel_eureka::{AppName, InstanceId, InstanceStatus};
use serde_json::{Value, json};

use super::table;
use crate::cli::CtlArgs;
use crate::settings::Settings;

const TIMEOUT: Duration = Duration::from_secs(5);

/// A failed command: what went wrong, a hint, and the exit code it means.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{message}")]
    BadArgument { message: String, hint: String },
}

impl CtlError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Source(e) => e.exit_code(),
            CtlError::BadArgument { .. } => 2,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            CtlError::BadArgument { hint, .. } => Some(hint.clone()),
            CtlError::Source(SourceError::Unreachable { .. }) => Some(
                "is the server running? Set its URL with --registry-url/--config-url/--gateway-url \
                 or KEEL_REGISTRY_URL/KEEL_CONFIG_URL/KEEL_GATEWAY_URL"
                    .to_owned(),
            ),
            CtlError::Source(SourceError::BadUrl { .. }) => {
                Some("URLs look like http://127.0.0.1:8761".to_owned())
            }
            _ => None,
        }
    }
}

fn bad(message: impl Into<String>, hint: impl Into<String>) -> CtlError {
    CtlError::BadArgument {
        message: message.into(),
        hint: hint.into(),
    }
}

type Result<T = ()> = std::result::Result<T, CtlError>;

/// The servers `keel ctl` talks to and how it prints.
#[derive(Debug)]
pub struct Ctx {
    json: bool,
    credentials: Credentials,
    registry_url: String,
    config_url: String,
    gateway_url: String,
}

impl Ctx {
    pub fn new(args: &CtlArgs, settings: &Settings) -> Self {
        let token = args
            .token
            .clone()
            .or_else(|| settings.registry.auth.tokens.first().cloned());
        Self {
            json: args.json,
            credentials: Credentials { bearer: token },
            registry_url: settings.registry_url.clone(),
            config_url: settings.config_url.clone(),
            gateway_url: settings.gateway_url.clone(),
        }
    }

    fn transport(&self, url: &str) -> Result<Transport> {
        Ok(Transport::http(url, self.credentials.clone(), TIMEOUT)?)
    }

    fn registry(&self) -> Result<HttpRegistry> {
        Ok(HttpRegistry::new(self.transport(&self.registry_url)?))
    }

    fn config(&self) -> Result<ConfigClient> {
        Ok(ConfigClient::new(self.transport(&self.config_url)?))
    }

    fn gateway(&self) -> Result<GatewayClient> {
        Ok(GatewayClient::new(self.transport(&self.gateway_url)?))
    }

    fn print_json(&self, value: &impl serde::Serialize) {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("\"{e}\""))
        );
    }
}

pub async fn apps(ctx: &Ctx) -> Result {
    let state = ctx.registry()?.state().await?;
    if ctx.json {
        ctx.print_json(&state.apps);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = state
        .apps
        .iter()
        .map(|a| {
            let count = |s: &str| a.instances.iter().filter(|i| i.status == s).count();
            let other = a.instances.len() - count("UP") - count("DOWN") - count("OUT_OF_SERVICE");
            vec![
                a.name.clone(),
                a.instances.len().to_string(),
                count("UP").to_string(),
                count("DOWN").to_string(),
                count("OUT_OF_SERVICE").to_string(),
                other.to_string(),
            ]
        })
        .collect();
    table::print(
        &["APP", "INSTANCES", "UP", "DOWN", "OUT_OF_SERVICE", "OTHER"],
        &rows,
    );
    Ok(())
}

fn app_name(app: &str) -> Result<AppName> {
    AppName::parse(app).map_err(|e| {
        bad(
            format!("invalid application name `{app}`: {e}"),
            "run `keel ctl apps` to list applications",
        )
    })
}

pub async fn instances(ctx: &Ctx, app: &str) -> Result {
    let name = app_name(app)?;
    let state = ctx.registry()?.state().await?;
    let Some(found) = state.apps.iter().find(|a| a.name == name.as_str()) else {
        let known: Vec<&str> = state.apps.iter().map(|a| a.name.as_str()).collect();
        return Err(SourceError::NotFound {
            url: ctx.registry_url.clone(),
            message: format!(
                "no application {name} (registered: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        }
        .into());
    };
    if ctx.json {
        ctx.print_json(&found.instances);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = found
        .instances
        .iter()
        .map(|i| {
            let registered = if i.lease.registered_at > 0 {
                format!("{} ago", table::duration(state.now - i.lease.registered_at))
            } else {
                "-".to_owned()
            };
            let metadata: Vec<String> =
                i.metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
            vec![
                i.id.clone(),
                i.status.clone(),
                i.zone.clone().unwrap_or_else(|| "-".to_owned()),
                format!(
                    "{}:{}",
                    if i.ip.is_empty() { &i.host } else { &i.ip },
                    i.port
                ),
                format!(
                    "{}s/{}s",
                    i.lease.renewal_interval_secs, i.lease.duration_secs
                ),
                registered,
                metadata.join(","),
            ]
        })
        .collect();
    table::print(
        &[
            "ID",
            "STATUS",
            "ZONE",
            "ADDRESS",
            "RENEW/LEASE",
            "REGISTERED",
            "METADATA",
        ],
        &rows,
    );
    Ok(())
}

pub async fn status(ctx: &Ctx, app: &str, id: &str, status: &str) -> Result {
    let name = app_name(app)?;
    let id = InstanceId::parse(id).map_err(|e| {
        bad(
            format!("invalid instance id `{id}`: {e}"),
            format!("run `keel ctl instances {app}` to list instance ids"),
        )
    })?;
    let Some(status) = InstanceStatus::parse(&status.to_ascii_uppercase()) else {
        return Err(bad(
            format!("unknown status `{status}`"),
            "use UP, DOWN, STARTING, OUT_OF_SERVICE or UNKNOWN",
        ));
    };
    ctx.registry()?.set_status(&name, &id, status).await?;
    if ctx.json {
        ctx.print_json(
            &json!({"app": name.to_string(), "id": id.to_string(), "status": status.to_string()}),
        );
    } else {
        println!("{name} {id}: {status}");
    }
    Ok(())
}

pub async fn routes(ctx: &Ctx) -> Result {
    let routes = ctx.gateway()?.routes().await?;
    if ctx.json {
        ctx.print_json(&routes);
        return Ok(());
    }
    let list = |v: &Value| -> String {
        v.as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    let defined = routes["routes"].as_array().into_iter().flatten();
    let discovered = routes["discovery"]["routes"]
        .as_array()
        .into_iter()
        .flatten();
    let rows: Vec<Vec<String>> = defined
        .chain(discovered)
        .map(|r| {
            vec![
                r["id"].as_str().unwrap_or_default().to_owned(),
                r["source"].as_str().unwrap_or_default().to_owned(),
                r["uri"].as_str().unwrap_or_default().to_owned(),
                list(&r["predicates"]),
                list(&r["filters"]),
            ]
        })
        .collect();
    table::print(&["ID", "SOURCE", "URI", "PREDICATES", "FILTERS"], &rows);
    Ok(())
}

pub async fn routes_apply(ctx: &Ctx, file: &Path, dry_run: bool) -> Result {
    let text = std::fs::read_to_string(file).map_err(|e| {
        bad(
            format!("cannot read {}: {e}", file.display()),
            "pass a route file in Spring Cloud Gateway's YAML, JSON or .properties shape",
        )
    })?;
    let properties = file.extension().is_some_and(|e| e == "properties");
    let document = keel_gateway::RouteDocument::parse(&text, properties).map_err(|e| {
        bad(
            format!("{}: {e}", file.display()),
            "routes live under spring.cloud.gateway.routes (or a top-level `routes:` list)",
        )
    })?;
    if document.routes.is_empty() {
        return Err(bad(
            format!("{} defines no routes", file.display()),
            "routes live under spring.cloud.gateway.routes (or a top-level `routes:` list)",
        ));
    }
    let gateway = ctx.gateway()?;
    // The gateway compiles the whole file against its live table first, so a bad file
    // changes nothing.
    let served = gateway.validate(&text, properties).await?;
    let ids: Vec<String> = document.routes.iter().map(|r| r.id.to_string()).collect();
    if !dry_run {
        for route in &document.routes {
            let value = serde_json::to_value(route).map_err(|e| {
                bad(
                    format!("route {}: {e}", route.id),
                    "check the route definition",
                )
            })?;
            gateway.put_route(&route.id, &value).await?;
        }
    }
    if ctx.json {
        ctx.print_json(&json!({"dryRun": dry_run, "valid": true, "routes": ids, "served": served}));
    } else if dry_run {
        println!(
            "valid: {} route(s) from {} ({}); the gateway would serve {served} route(s); nothing changed",
            ids.len(),
            file.display(),
            ids.join(", ")
        );
    } else {
        println!(
            "applied {} route(s) from {}: {}",
            ids.len(),
            file.display(),
            ids.join(", ")
        );
    }
    Ok(())
}

pub async fn config_get(ctx: &Ctx, app: &str, profile: &str, label: Option<&str>) -> Result {
    let merged = ctx.config()?.merged(app, profile, label).await?;
    if ctx.json {
        ctx.print_json(&merged);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = merged
        .entries
        .iter()
        .map(|e| {
            vec![
                e.key.clone(),
                e.value
                    .as_str()
                    .map_or_else(|| e.value.to_string(), str::to_owned),
                e.source.clone(),
            ]
        })
        .collect();
    println!(
        "# {} {} label={} version={}",
        merged.application,
        merged.profiles.join(","),
        merged.label.as_deref().unwrap_or("-"),
        merged.version.as_deref().unwrap_or("-")
    );
    table::print(&["KEY", "VALUE", "SOURCE"], &rows);
    Ok(())
}

pub async fn config_history(ctx: &Ctx, app: &str) -> Result {
    let history = ctx.config()?.history(app).await?;
    if ctx.json {
        ctx.print_json(&history);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = history["commits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let files: Vec<&str> = c["files"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            vec![
                c["commit"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(10)
                    .collect(),
                c["timestamp"].as_str().unwrap_or_default().to_owned(),
                c["author"].as_str().unwrap_or_default().to_owned(),
                files.join(","),
                c["message"]
                    .as_str()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            ]
        })
        .collect();
    table::print(&["COMMIT", "DATE", "AUTHOR", "FILES", "MESSAGE"], &rows);
    Ok(())
}

pub async fn config_diff(ctx: &Ctx, from: &str, to: &str, app: &str, profile: &str) -> Result {
    let diff = ctx.config()?.diff(from, to, app, profile).await?;
    if ctx.json {
        ctx.print_json(&diff);
        return Ok(());
    }
    let mut rows = Vec::new();
    for (mark, key) in [("+", "added"), ("-", "removed"), ("~", "changed")] {
        for (k, v) in diff[key].as_object().into_iter().flatten() {
            rows.push(vec![mark.to_owned(), k.clone(), v.to_string()]);
        }
    }
    println!(
        "# {app} {profile}: {} -> {}",
        diff["from"].as_str().unwrap_or(from),
        diff["to"].as_str().unwrap_or(to)
    );
    table::print(&["", "KEY", "VALUE"], &rows);
    Ok(())
}

pub async fn breakers(ctx: &Ctx) -> Result {
    // The dashboard on the registry's port aggregates every service's /hystrix.stream.
    let state: Value = ctx
        .transport(&ctx.registry_url)?
        .get("/keel/v1/dashboard/state")
        .await?
        .json()?;
    let breakers: Vec<BreakerView> =
        serde_json::from_value(state["traffic"]["breakers"].clone()).unwrap_or_default();
    if ctx.json {
        ctx.print_json(&breakers);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = breakers
        .iter()
        .map(|b| {
            vec![
                b.name.clone(),
                b.source.clone(),
                b.state.clone(),
                format!("{:.0}%", b.error_percentage),
                b.request_count.to_string(),
                b.short_circuited.to_string(),
                b.rejected.to_string(),
                b.reporting_hosts.to_string(),
            ]
        })
        .collect();
    table::print(
        &[
            "COMMAND",
            "SOURCE",
            "STATE",
            "ERRORS",
            "REQUESTS",
            "SHORT-CIRCUITED",
            "REJECTED",
            "HOSTS",
        ],
        &rows,
    );
    Ok(())
}
