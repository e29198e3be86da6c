//! RegistryDiscovery against the real registry: the watch stream carries registrations and
//! graceful deregistrations; a dead first URL fails over; a dead registry leaves the cache be.

use keel_client::discovery::{DiscoveryConfig, Feed};
use keel_client::{Discovery, RegistrationAgent, RegistrationConfig, RegistryDiscovery};

use crate::support::{RegistryServer, app, dead_url, eventually, instance, urls};

#[tokio::test]
async fn watch_stream_carries_registration_and_graceful_deregistration() {
    let server = RegistryServer::start().await;
    // The first node is dead: discovery and the agent both fail over to the second.
    let dead = dead_url().await;
    let registries = urls(&[&dead, &server.url()]);
    let discovery = RegistryDiscovery::start(DiscoveryConfig::new(registries.clone())).unwrap();
    let agent = RegistrationAgent::start(RegistrationConfig::new(
        registries,
        instance("orders", 9001),
    ))
    .unwrap();
    agent.registered().await;
    discovery.ready().await;

    let orders = app("orders");
    let mut rx = discovery.subscribe(&orders);
    eventually("the instance to reach the cache", || {
        discovery.instances(&orders).len() == 1
    })
    .await;
    let status = discovery.status();
    assert_eq!(status.feed, Feed::Watch, "{status:?}");
    assert_eq!(status.registry, server.url());
    assert!(status.version.is_some());
    let seen = &discovery.instances(&orders)[0];
    assert_eq!(seen.id.as_str(), "127.0.0.1:orders:9001");
    assert_eq!(seen.base_url().as_deref(), Some("http://127.0.0.1:9001"));
    assert_eq!(discovery.apps(), vec![orders.clone()]);
    assert_eq!(agent.status().registry, server.url());

    // Graceful deregistration: DOWN then cancel; the subscriber sees the instance go.
    agent.deregister().await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            if rx.borrow_and_update().is_empty() {
                break;
            }
            rx.changed().await.unwrap();
        }
    })
    .await
    .expect("deregistration never reached the subscriber");
    assert!(discovery.instances(&orders).is_empty());
    assert!(server.registry.snapshot().instances().next().is_none());
}

#[tokio::test]
async fn an_unreachable_registry_never_empties_the_cache() {
    let server = RegistryServer::start().await;
    let registries = urls(&[&server.url()]);
    let agent = RegistrationAgent::start(RegistrationConfig::new(
        registries.clone(),
        instance("billing", 9002),
    ))
    .unwrap();
    agent.registered().await;
    let discovery = RegistryDiscovery::start(DiscoveryConfig::new(registries)).unwrap();
    let billing = app("billing");
    eventually("the instance to reach the cache", || {
        discovery.instances(&billing).len() == 1
    })
    .await;

    server.stop().await;
    eventually("discovery to notice the registry is gone", || {
        discovery.status().feed == Feed::Disconnected
    })
    .await;
    // Still there, and still there after the reconnect attempts that follow.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(discovery.instances(&billing).len(), 1);
    assert_eq!(discovery.status().feed, Feed::Disconnected);
    drop(agent);
}
