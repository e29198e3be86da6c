//! Command-line flags. Every setting flag here maps to one settings key (see `settings.rs`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Keel: the Spring Cloud Netflix stack (Eureka, Zuul, Hystrix, Ribbon, Spring Cloud Config) as
/// one fast binary.
///
/// Settings come from flags, then KEEL_* environment variables, then the file given by --config,
/// then built-in defaults. A setting `a.b-c` is the flag --b-c (or --a-b-c in standalone), the
/// variable KEEL_A_B_C and the YAML key `a: {b-c: …}`.
#[derive(Debug, Parser)]
#[command(name = "keel", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// A keel.yaml file with settings (lower precedence than flags and KEEL_* variables).
    #[arg(long, global = true, value_name = "FILE", env = "KEEL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format: `text` (default) or `json` (one object per line). [setting: log.format]
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. `info` or `keel_registry=debug,info`. [setting: log.level]
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every component in one process: registry and dashboard on 8761, config centre on
    /// 8888, gateway on 8080. On first start it creates --data-dir with a sample config repository.
    Standalone(StandaloneArgs),
    /// Run the service registry (Eureka's REST API) and the dashboard, on port 8761.
    Registry(RegistryArgs),
    /// Run the config centre (Spring Cloud Config's HTTP API), on port 8888.
    Config(ConfigArgs),
    /// Run the gateway (edge proxy routed through the registry), on port 8080.
    Gateway(GatewayArgs),
    /// Exit 0 when the component at URL reports UP (for container healthchecks; scratch images
    /// have no curl). URL defaults its path to /actuator/health.
    Health(HealthArgs),
    /// Inspect and steer running Keel servers.
    Ctl(CtlArgs),
}

/// Flags every server subcommand shares.
#[derive(Debug, Args, Default)]
pub struct ServerFlags {
    /// Where Keel keeps its state (the sample config repository, caches). [setting: data-dir,
    /// default ./keel-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Largest request body accepted, e.g. `1MiB`; larger ones get 413. [setting:
    /// http.max-body-bytes, default 1MiB]
    #[arg(long, value_name = "SIZE")]
    pub max_body_bytes: Option<String>,
    /// Largest request head (request line and headers), e.g. `16KiB`; larger ones get 431
    /// (at least 8KiB). [setting: http.max-header-bytes, default 16KiB]
    #[arg(long, value_name = "SIZE")]
    pub max_header_bytes: Option<String>,
    /// How long in-flight requests may finish after a SIGTERM, e.g. `8s`. [setting:
    /// shutdown.drain-timeout, default 8s]
    #[arg(long, value_name = "DURATION")]
    pub drain_timeout: Option<String>,
    /// How long readiness reports DOWN before listeners close on SIGTERM, e.g. `5s`, so load
    /// balancers stop sending traffic first. [setting: shutdown.readiness-delay, default 0s]
    #[arg(long, value_name = "DURATION")]
    pub readiness_delay: Option<String>,
}

#[derive(Debug, Args)]
pub struct StandaloneArgs {
    /// Address for the registry and dashboard. [setting: registry.bind, default 0.0.0.0:8761]
    #[arg(long, value_name = "ADDR")]
    pub registry_bind: Option<String>,
    /// Address for the config centre. [setting: config.bind, default 0.0.0.0:8888]
    #[arg(long, value_name = "ADDR")]
    pub config_bind: Option<String>,
    /// Address for the gateway. [setting: gateway.bind, default 0.0.0.0:8080]
    #[arg(long, value_name = "ADDR")]
    pub gateway_bind: Option<String>,
    /// The gateway's route file (Spring Cloud Gateway's shape), watched. [setting: gateway.routes]
    #[arg(long, value_name = "FILE")]
    pub routes: Option<String>,
    /// The gateway's access log: `off`, `stdout` or a file path. [setting: gateway.access-log,
    /// default off]
    #[arg(long, value_name = "TARGET")]
    pub access_log: Option<String>,
    #[command(flatten)]
    pub config: ConfigFlags,
    #[command(flatten)]
    pub server: ServerFlags,
}

#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Address to listen on. [setting: registry.bind, default 0.0.0.0:8761]
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Require this token for writes, as `Authorization: Bearer TOKEN` or as the password of
    /// HTTP basic auth (e.g. http://keel:TOKEN@host:8761/eureka/). [setting: registry.auth-token]
    #[arg(long, value_name = "TOKEN")]
    pub auth_token: Option<String>,
    /// A file of `user:password` lines accepted as HTTP basic auth for writes. [setting:
    /// registry.users-file]
    #[arg(long, value_name = "FILE")]
    pub users_file: Option<String>,
    /// Require credentials for reads too: `true` or `false`. [setting: registry.protect-reads,
    /// default false]
    #[arg(long, value_name = "BOOL")]
    pub protect_reads: Option<String>,
    /// Self-preservation (stop expiring leases when renewals collapse): `true` or `false`.
    /// [setting: registry.self-preservation, default true]
    #[arg(long, value_name = "BOOL")]
    pub self_preservation: Option<String>,
    /// Other registry nodes, comma-separated Eureka service URLs
    /// (http://node2:8761/eureka/,http://node3:8761/eureka/): writes replicate to them and a
    /// starting node syncs from them. Listing this node too is harmless. [setting:
    /// registry.peers]
    #[arg(long, value_name = "URLS")]
    pub peers: Option<String>,
    /// Find the other registry nodes by DNS: every address record of NAME is a peer on PORT
    /// (this node's own addresses excluded), re-resolved every 5s. Suits a Compose service
    /// with replicas, Swarm's `tasks.<service>` and a Kubernetes headless Service. Combines
    /// with --peers. [setting: registry.peers-dns, e.g. `registry:8761`;
    /// registry.peers-dns-interval, default 5s]
    #[arg(long, value_name = "NAME:PORT")]
    pub peers_dns: Option<String>,
    #[command(flatten)]
    pub server: ServerFlags,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Address to listen on. [setting: config.bind, default 0.0.0.0:8888]
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Register in this registry as CONFIGSERVER (the name Spring's discovery-first clients look
    /// up); comma-separated Eureka service URLs. The advertised host is the bound IP; bound to
    /// 0.0.0.0, the host of config.url unless it is loopback, else the IP this host reaches the
    /// registry from. [setting: config.registry-url]
    #[arg(long, value_name = "URLS")]
    pub registry: Option<String>,
    #[command(flatten)]
    pub config: ConfigFlags,
    #[command(flatten)]
    pub server: ServerFlags,
}

/// The config centre's flags, shared by `keel config` and `keel standalone`.
#[derive(Debug, Args, Default)]
pub struct ConfigFlags {
    /// The git repository holding configuration: a local path, file:// or https:// URL.
    /// [setting: config.git-uri, default <data-dir>/config-repo.git, created with sample
    /// configuration]
    #[arg(long, value_name = "URI")]
    pub git_uri: Option<String>,
    /// Where the git mirror is kept; never wiped, so Keel can start from it when the remote is
    /// down. [setting: config.basedir, default <data-dir>/config-mirror]
    #[arg(long, value_name = "DIR")]
    pub basedir: Option<String>,
    /// Serve a plain directory instead of git (label `main`). [setting: config.native]
    #[arg(long, value_name = "DIR")]
    pub native: Option<String>,
    /// Comma-separated extra search paths; `{application}`, `{profile}` and `{label}` are
    /// filled in. [setting: config.search-paths]
    #[arg(long, value_name = "PATHS")]
    pub search_paths: Option<String>,
    /// The label served when a request names none. [setting: config.default-label, default
    /// main]
    #[arg(long, value_name = "LABEL")]
    pub default_label: Option<String>,
    /// `false` answers 404 to applications that match no file. [setting: config.accept-empty,
    /// default true]
    #[arg(long, value_name = "BOOL")]
    pub accept_empty: Option<String>,
    /// How often to fetch without a webhook, e.g. `30s`; `0s` disables the timer. [setting:
    /// config.refresh-interval, default 30s]
    #[arg(long, value_name = "DURATION")]
    pub refresh_interval: Option<String>,
    /// The symmetric key for {cipher} values, /encrypt and /decrypt. [setting: encrypt.key,
    /// variable KEEL_ENCRYPT_KEY]
    #[arg(long, value_name = "KEY")]
    pub encrypt_key: Option<String>,
    /// Secret that /monitor webhooks must be signed with (GitHub, Gitea, Bitbucket) or carry
    /// (GitLab, Gitee, X-Monitor-Token). [setting: config.monitor-secret]
    #[arg(long, value_name = "SECRET")]
    pub monitor_secret: Option<String>,
    /// Credentials required for reads: `basic:USER:PASSWORD` or `bearer:TOKEN`. [setting:
    /// config.read-auth]
    #[arg(long, value_name = "CREDENTIALS")]
    pub read_auth: Option<String>,
    /// Credentials required for /encrypt, /decrypt and /monitor: `basic:USER:PASSWORD` or
    /// `bearer:TOKEN`. [setting: config.admin-auth]
    #[arg(long, value_name = "CREDENTIALS")]
    pub admin_auth: Option<String>,
    /// NATS URL of the bus linking config servers, e.g. nats://127.0.0.1:4222. [setting:
    /// config.bus]
    #[arg(long, value_name = "URL")]
    pub bus: Option<String>,
}

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address to listen on. [setting: gateway.bind, default 0.0.0.0:8080]
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Route file in Spring Cloud Gateway's shape (YAML, JSON or .properties), watched for
    /// changes. [setting: gateway.routes]
    #[arg(long, value_name = "FILE")]
    pub routes: Option<String>,
    /// Access log: `off`, `stdout` or a file path (one JSON line per request). [setting:
    /// gateway.access-log, default off]
    #[arg(long, value_name = "TARGET")]
    pub access_log: Option<String>,
    /// Comma-separated CIDR blocks whose X-Forwarded-*/Forwarded headers are trusted. [setting:
    /// gateway.trusted-proxies, default none]
    #[arg(long, value_name = "CIDRS")]
    pub trusted_proxies: Option<String>,
    /// The registry whose instances the gateway routes to. [setting: registry.url, default
    /// http://127.0.0.1:8761]
    #[arg(long, value_name = "URL")]
    pub registry_url: Option<String>,
    /// Register in this registry as KEEL-GATEWAY (so the dashboard finds it); comma-separated
    /// Eureka service URLs. The advertised host is picked as config.registry-url's is, from
    /// gateway.url. [setting: gateway.registry-url]
    #[arg(long, value_name = "URLS")]
    pub registry: Option<String>,
    /// Largest request body proxied, e.g. `10MiB`; unset: no gateway-wide limit (routes use
    /// RequestSize). Independent of --max-body-bytes (http.max-body-bytes), which does not apply
    /// to proxied requests. [setting: gateway.max-body-bytes]
    #[arg(long, value_name = "SIZE")]
    pub max_proxied_body: Option<String>,
    /// Threads serving the proxy, each with its own runtime and upstream pools; 0: one per CPU.
    /// [setting: gateway.workers, default 0]
    #[arg(long, value_name = "N")]
    pub workers: Option<String>,
    #[command(flatten)]
    pub server: ServerFlags,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The component's base URL or health URL, e.g. http://127.0.0.1:8761.
    pub url: String,
    /// Give up after this long, e.g. `3s`.
    #[arg(long, value_name = "DURATION", default_value = "3s")]
    pub timeout: String,
}

#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The registry's base URL. [setting: registry.url, default http://127.0.0.1:8761]
    #[arg(long, value_name = "URL")]
    pub registry_url: Option<String>,
    /// The config centre's base URL. [setting: config.url, default http://127.0.0.1:8888]
    #[arg(long, value_name = "URL")]
    pub config_url: Option<String>,
    /// The gateway's base URL. [setting: gateway.url, default http://127.0.0.1:8080]
    #[arg(long, value_name = "URL")]
    pub gateway_url: Option<String>,
    /// Credentials for changes (and protected reads): sent as `Authorization: Bearer TOKEN`.
    /// Defaults to the registry.auth-token setting.
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        env = "KEEL_CTL_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// `keel ctl` exits 0 on success, 1 when a server failed, 2 on a bad argument, 3 when a server
/// is unreachable, 4 when credentials are refused and 5 when the thing asked for does not exist.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Show the health of the registry, config centre and gateway.
    Health,
    /// List registered applications with their instance counts by status.
    Apps,
    /// List one application's instances: status, zone, address, lease.
    Instances {
        /// The application name, e.g. DEMO-CALLEE (case-insensitive).
        app: String,
    },
    /// Set an instance's status: OUT_OF_SERVICE takes it out of rotation, UP puts it back.
    Status {
        /// The application name.
        app: String,
        /// The instance id (see `keel ctl instances APP`).
        id: String,
        /// UP, DOWN, STARTING, OUT_OF_SERVICE or UNKNOWN.
        status: String,
    },
    /// List the gateway's routes, or apply a route file.
    Routes {
        #[command(subcommand)]
        action: Option<RoutesAction>,
    },
    /// Read the config centre: merged configuration, history, diffs.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Circuit breakers across services and the gateway, as the dashboard aggregates them.
    Breakers,
}

#[derive(Debug, Subcommand)]
pub enum RoutesAction {
    /// Add or replace the routes of a file (Spring Cloud Gateway's YAML, JSON or .properties)
    /// through the gateway's admin API, after the gateway has compiled the whole file.
    Apply {
        /// The route file.
        file: PathBuf,
        /// Only check that the gateway would accept the file; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// The merged configuration of an application, with the property source of each key.
    Get {
        /// The application, e.g. demo-callee.
        app: String,
        /// The profile(s), comma-separated, e.g. default or prod,eu.
        profile: String,
        /// The label (branch, tag or commit); the server's default when omitted.
        label: Option<String>,
    },
    /// The commits that touched an application's configuration, newest first.
    History {
        /// The application.
        app: String,
    },
    /// How an application's merged configuration changed between two labels or commits.
    Diff {
        /// The older label or commit.
        from: String,
        /// The newer label or commit.
        to: String,
        /// The application whose configuration is compared.
        #[arg(long)]
        app: String,
        /// The profile compared.
        #[arg(long, default_value = "default")]
        profile: String,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every flag and positional argument of every subcommand has help text.
    #[test]
    fn every_argument_is_described() {
        fn walk(cmd: &clap::Command, path: &str) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(arg.get_help().is_some(), "{path} {id} has no help");
            }
            for sub in cmd.get_subcommands() {
                assert!(
                    sub.get_about().is_some(),
                    "{path} {} has no about",
                    sub.get_name()
                );
                walk(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        walk(&cmd, "keel");
    }
}
