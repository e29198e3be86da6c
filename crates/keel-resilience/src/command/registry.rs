//! Registry of commands and pools by key, so every call site with the same key shares breaker, metrics and pool.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use super::{Command, CommandConfig};
use crate::clock::WallClock;
use crate::pool::BlockingPool;

/// Commands and pools by key. Look a command up once and keep the [`Command`]: calls never touch the registry.
#[derive(Clone, Debug, Default)]
pub struct CommandRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    commands: RwLock<BTreeMap<String, Command>>,
    pools: RwLock<BTreeMap<String, Arc<BlockingPool>>>,
    wall: WallClock,
}

impl CommandRegistry {
    /// An empty registry using the system wall clock for emitted timestamps.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty registry with an injected wall clock (used for `currentTime` in the Hystrix stream).
    pub fn with_wall_clock(wall: WallClock) -> Self {
        CommandRegistry {
            inner: Arc::new(Inner {
                commands: RwLock::default(),
                pools: RwLock::default(),
                wall,
            }),
        }
    }

    /// The command for `key`, created with `config` on first use; later configs for the same key are ignored,
    /// as with Hystrix where the first instantiation fixes a key's breaker and pool.
    pub fn command(&self, key: &str, config: CommandConfig) -> Command {
        if let Some(c) = self.get(key) {
            return c;
        }
        let mut commands = self
            .inner
            .commands
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = commands.get(key) {
            return c.clone();
        }
        let pool_key = config
            .thread_pool_key
            .clone()
            .or_else(|| config.group.clone())
            .unwrap_or_else(|| key.to_owned());
        let pool = {
            let mut pools = self
                .inner
                .pools
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::clone(
                pools
                    .entry(pool_key.clone())
                    .or_insert_with(|| Arc::new(BlockingPool::new(pool_key, config.pool.clone()))),
            )
        };
        let cmd = Command::with_pool(key, config, pool);
        commands.insert(key.to_owned(), cmd.clone());
        cmd
    }

    /// The command for `key`, if created.
    pub fn get(&self, key: &str) -> Option<Command> {
        self.inner
            .commands
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// All commands, ordered by key.
    pub fn commands(&self) -> Vec<Command> {
        self.inner
            .commands
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// All pools, ordered by key.
    pub fn pools(&self) -> Vec<Arc<BlockingPool>> {
        self.inner
            .pools
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// The wall clock for emitted timestamps.
    pub fn wall_clock(&self) -> &WallClock {
        &self.inner.wall
    }
}
