//! `Docker`: one test run's containers, networks and volumes, all named `<prefix>-…` and
//! labelled, removed on drop.

use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Output};

/// Whether a Docker engine answers, and what to do when none does.
#[derive(Debug)]
pub enum EngineCheck {
    Available,
    /// No engine: the reason, for the skip message.
    Missing(String),
}

/// Asks `docker version` for the server's version.
pub fn engine_check() -> EngineCheck {
    match Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
    {
        Ok(o) if o.status.success() => EngineCheck::Available,
        Ok(o) => EngineCheck::Missing(String::from_utf8_lossy(&o.stderr).trim().to_owned()),
        Err(e) => EngineCheck::Missing(format!("cannot run docker: {e}")),
    }
}

/// One run's resources. Every name starts with `prefix`.
#[derive(Debug)]
pub struct Docker {
    pub prefix: String,
    networks: Vec<String>,
    volumes: Vec<String>,
}

impl Docker {
    /// A fresh prefix from the process id and the time, so parallel or leftover runs never
    /// collide.
    pub fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        Self {
            prefix: format!("kchaos{}x{}", std::process::id(), nanos % 100_000),
            networks: Vec::new(),
            volumes: Vec::new(),
        }
    }

    pub fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.prefix)
    }

    /// Runs `docker args…`, returning its output; panics with stderr on failure.
    pub fn cmd(&self, args: &[&str]) -> String {
        let out = run(args);
        assert!(
            out.status.success(),
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Runs `docker args…` and reports only whether it succeeded.
    pub fn try_cmd(&self, args: &[&str]) -> bool {
        run(args).status.success()
    }

    pub fn network(&mut self, what: &str) -> String {
        let name = self.name(what);
        self.cmd(&["network", "create", "--label", &self.label(), &name]);
        self.networks.push(name.clone());
        name
    }

    pub fn volume(&mut self, what: &str) -> String {
        let name = self.name(what);
        self.cmd(&["volume", "create", "--label", &self.label(), &name]);
        self.volumes.push(name.clone());
        name
    }

    fn label(&self) -> String {
        format!("keel-chaos={}", self.prefix)
    }

    /// `docker run -d` of `image` as `<prefix>-<what>` on `networks` (the first at creation,
    /// the others connected before start) with `opts` before the image and `args` after it.
    pub fn run(
        &self,
        what: &str,
        networks: &[(&str, &[&str])],
        opts: &[&str],
        image: &str,
        args: &[&str],
    ) -> String {
        let name = self.name(what);
        let label = self.label();
        let mut create: Vec<&str> = vec!["create", "--name", &name, "--label", &label];
        let (first, aliases) = networks[0];
        create.extend(["--network", first]);
        for alias in aliases {
            create.extend(["--network-alias", alias]);
        }
        create.extend(opts);
        create.push(image);
        create.extend(args);
        self.cmd(&create);
        for (net, aliases) in &networks[1..] {
            self.connect(&name, net, aliases);
        }
        self.cmd(&["start", &name]);
        name
    }

    pub fn connect(&self, container: &str, network: &str, aliases: &[&str]) {
        let mut args = vec!["network", "connect"];
        for alias in aliases {
            args.extend(["--alias", alias]);
        }
        args.extend([network, container]);
        self.cmd(&args);
    }

    /// The container's IP on `network`.
    pub fn ip(&self, container: &str, network: &str) -> IpAddr {
        let format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
        let raw = self.cmd(&["inspect", "--format", &format, container]);
        raw.parse()
            .unwrap_or_else(|_| panic!("{container} has no IP on {network}: {raw:?}"))
    }

    pub fn addr(&self, container: &str, network: &str, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip(container, network), port)
    }

    pub fn inspect(&self, container: &str, format: &str) -> String {
        self.cmd(&["inspect", "--format", format, container])
    }

    /// The last lines of a container's log, for failure messages.
    pub fn logs(&self, container: &str) -> String {
        let out = run(&["logs", "--tail", "30", container]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Default for Docker {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let filter = format!("label={}", self.label());
        let ids = run(&["ps", "-aq", "--filter", &filter]);
        let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(ids);
            run(&args);
        }
        for net in &self.networks {
            run(&["network", "rm", net]);
        }
        for vol in &self.volumes {
            run(&["volume", "rm", "-f", vol]);
        }
    }
}

fn run(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker {}: {e}", args.join(" ")))
}
