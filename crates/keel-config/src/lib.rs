//! The config centre: Spring Cloud Config's role, served from a git repository.

mod sample;

use std::path::PathBuf;

use axum::Router;
use keel_server::{Health, HealthRegistry};

pub use sample::{SampleRepoError, ensure_sample_repo};

/// Settings for one config server.
#[derive(Clone, Debug)]
pub struct ConfigServerConfig {
    /// The git repository holding configuration (a local path for now).
    pub git_uri: PathBuf,
}

/// One config server's state, shared by its HTTP routes.
#[derive(Clone, Debug)]
pub struct ConfigServer {
    _config: ConfigServerConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigServerError {
    #[error("open git repository {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ConfigServer {
    /// Opens the repository so that a bad `--git-uri` is refused at start-up.
    pub fn new(
        config: ConfigServerConfig,
        health: &HealthRegistry,
    ) -> Result<Self, ConfigServerError> {
        let repo = gix::open(&config.git_uri).map_err(|e| ConfigServerError::Open {
            path: config.git_uri.clone(),
            source: Box::new(e),
        })?;
        let version = repo.head_id().map(|id| id.to_string()).unwrap_or_default();
        let uri = config.git_uri.display().to_string();
        health.register(
            "configServer",
            move || {
                Health::up()
                    .with_detail("repository", uri.clone())
                    .with_detail("version", version.clone())
            },
            false,
        );
        Ok(Self { _config: config })
    }
}

/// The config server's HTTP routes.
pub fn router(_server: ConfigServer) -> Router {
    Router::new()
}
