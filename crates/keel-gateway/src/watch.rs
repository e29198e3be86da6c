//! Watching the route file: a changed file is reloaded; an invalid one is logged and the old table kept.

use std::time::SystemTime;

use crate::Gateway;

impl Gateway {
    /// Polls the route file every `watch_interval` until the gateway is dropped.
    pub fn spawn_route_watch(&self) -> Option<tokio::task::JoinHandle<()>> {
        let path = self.config.routes_file.clone()?;
        let weak = std::sync::Arc::downgrade(&self.0);
        let interval = self.config.watch_interval;
        // Read once per tick; the stamp and the reload use the same bytes, so a rewrite between
        // two reads (truncate, then write) cannot load an empty or half-written file unseen.
        let read = |p: &std::path::Path| -> Result<((SystemTime, u64), Vec<u8>), String> {
            let modified = std::fs::metadata(p)
                .and_then(|m| m.modified())
                .map_err(|e| e.to_string())?;
            let bytes = std::fs::read(p).map_err(|e| e.to_string())?;
            // Content hash too: an edit within the mtime granularity must still be seen.
            let hash = bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
            });
            Ok(((modified, hash), bytes))
        };
        let mut last = read(&path).ok().map(|(stamp, _)| stamp);
        // An unreadable file is reported once, not on every tick, until it reads again.
        let mut unreadable: Option<String> = None;
        // A file being rewritten is empty for a moment (truncate, then write); an empty table
        // would route nothing, so emptiness must be seen twice in a row to count.
        let mut empty_once = false;
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let gw = Gateway(inner);
                let (now, bytes) = match read(&path) {
                    Ok(read) => {
                        unreadable = None;
                        read
                    }
                    Err(e) => {
                        if unreadable.as_ref() != Some(&e) {
                            tracing::warn!(file = %path.display(), error = %e, "route file unreadable; the previous routes keep serving");
                            unreadable = Some(e);
                        }
                        continue;
                    }
                };
                if Some(now) == last {
                    continue;
                }
                if bytes.is_empty() && !empty_once {
                    empty_once = true;
                    continue;
                }
                empty_once = false;
                last = Some(now);
                let text = match String::from_utf8(bytes) {
                    Ok(text) => text,
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "route file rejected: not UTF-8; the previous routes keep serving");
                        continue;
                    }
                };
                match gw.load_file_text(&path, &text) {
                    Ok(()) => {
                        tracing::info!(file = %path.display(), routes = gw.table.load().routes.len(), "routes reloaded")
                    }
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "route file rejected; the previous routes keep serving")
                    }
                }
            }
        }))
    }
}
