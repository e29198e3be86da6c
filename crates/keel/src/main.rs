//! `keel`: parses flags, environment and config file, then starts the chosen components.

mod cli;
mod ctl;
mod logging;
mod run;
mod self_registration;
mod settings;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `keel health` reads no settings: it is also the healthcheck of SDK services' containers,
    // whose KEEL_* variables (KEEL_REGISTRY, KEEL_CONFIG_URL) are not Keel's settings.
    if let Command::Health(args) = &cli.command {
        return match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt
                .block_on(ctl::health_check(args))
                .unwrap_or(ExitCode::FAILURE),
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let settings = match settings::Settings::load(&cli) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(settings.log_format, &settings.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Standalone(_) => run::components(&settings, run::ALL).await,
            Command::Registry(_) => run::components(&settings, &[run::Component::Registry]).await,
            Command::Config(_) => run::components(&settings, &[run::Component::Config]).await,
            Command::Gateway(_) => run::components(&settings, &[run::Component::Gateway]).await,
            Command::Health(args) => return ctl::health_check(args).await,
            Command::Ctl(args) => return ctl::run(args, &settings).await,
        }
        .map(|()| ExitCode::SUCCESS)
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
