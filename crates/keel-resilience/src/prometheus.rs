//! Prometheus export of every command and pool in a registry, read live at scrape time.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::command::CommandRegistry;
use crate::event::Event;
use crate::histogram::HYSTRIX_PERCENTILES;
use crate::metrics::names;

/// Registers a collector for all commands and pools of `commands` (present and future) into `registry`.
pub fn register_metrics(
    commands: &CommandRegistry,
    registry: &mut prometheus_client::registry::Registry,
) {
    registry.register_collector(Box::new(CommandCollector {
        commands: commands.clone(),
    }));
}

#[derive(Debug)]
struct CommandCollector {
    commands: CommandRegistry,
}

fn gauge<'a>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Vec<(&'a str, String)>, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for CommandCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snaps: Vec<_> = self
            .commands
            .commands()
            .iter()
            .map(|c| c.snapshot())
            .collect();
        let cmd = |s: &crate::metrics::CommandSnapshot| {
            vec![("command", s.key.clone()), ("group", s.group.clone())]
        };
        gauge(
            &mut enc,
            names::COMMAND_ROLLING_EVENTS,
            "Events per command over the rolling window",
            snaps.iter().flat_map(|s| {
                Event::ALL.iter().map(move |e| {
                    let mut l = cmd(s);
                    l.push(("event", e.as_str().to_owned()));
                    (l, s.count(*e) as f64)
                })
            }),
        )?;
        gauge(
            &mut enc,
            names::COMMAND_BREAKER_STATE,
            "Circuit breaker state: 0 closed, 1 open, 2 half-open",
            snaps.iter().map(|s| (cmd(s), s.state.as_gauge() as f64)),
        )?;
        gauge(
            &mut enc,
            names::COMMAND_ERROR_PERCENTAGE,
            "Error percentage over the breaker window",
            snaps
                .iter()
                .map(|s| (cmd(s), s.health.error_percentage() as f64)),
        )?;
        gauge(
            &mut enc,
            names::COMMAND_CONCURRENT,
            "Executions in flight",
            snaps.iter().map(|s| (cmd(s), s.concurrent as f64)),
        )?;
        for (name, help, pick) in [
            (
                names::COMMAND_LATENCY_EXECUTE,
                "Execution latency percentiles over the rolling window",
                true,
            ),
            (
                names::COMMAND_LATENCY_TOTAL,
                "Total latency percentiles over the rolling window",
                false,
            ),
        ] {
            gauge(
                &mut enc,
                name,
                help,
                snaps.iter().flat_map(|s| {
                    let lat = if pick {
                        &s.latency_execute
                    } else {
                        &s.latency_total
                    };
                    HYSTRIX_PERCENTILES.iter().zip(lat.percentiles_micros).map(
                        move |((_, p), v)| {
                            let mut l = cmd(s);
                            l.push(("quantile", format!("{}", p / 100.0)));
                            (l, v as f64 / 1e6)
                        },
                    )
                }),
            )?;
        }
        let pools: Vec<_> = self.commands.pools().iter().map(|p| p.snapshot()).collect();
        let pool = |name: &str| vec![("pool", name.to_owned())];
        gauge(
            &mut enc,
            names::POOL_ACTIVE,
            "Pool tasks running",
            pools.iter().map(|p| (pool(&p.name), p.active as f64)),
        )?;
        gauge(
            &mut enc,
            names::POOL_QUEUED,
            "Pool tasks queued",
            pools.iter().map(|p| (pool(&p.name), p.queue_size as f64)),
        )?;
        gauge(
            &mut enc,
            names::POOL_COMPLETED,
            "Pool tasks completed since start",
            pools.iter().map(|p| (pool(&p.name), p.completed as f64)),
        )?;
        gauge(
            &mut enc,
            names::POOL_ROLLING_REJECTED,
            "Pool rejections over the rolling window",
            pools
                .iter()
                .map(|p| (pool(&p.name), p.rolling_rejected as f64)),
        )?;
        Ok(())
    }
}
