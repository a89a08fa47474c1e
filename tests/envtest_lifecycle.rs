//! A truthful lifecycle on a real kube-apiserver (envtest), real `ampd worker` processes
//! and a real `ampd operator`: a SIGTERM or SIGKILL is `Stopped` at once (the node id
//! lock is free), a frozen (SIGSTOP) worker is `Stale` (lock held, no heartbeats), a real
//! restart moves RESTARTS, and a deleted stopped worker's AmpWorker stays deleted.

mod common;

use std::time::Duration;

use amp_operator::operator::crd::AmpWorker;
use amp_operator::testing::envtest;
use amp_operator::testing::postgres::eventually;
use common::{Proc, migrated_db, wait_registered, worker};
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

/// A user-created AmpWorker with a short heartbeat timeout (the SIGSTOP case).
fn watched(node: &str, timeout: i64) -> AmpWorker {
    serde_json::from_value(json!({
        "apiVersion": "amp.io/v1alpha1", "kind": "AmpWorker",
        "metadata": {"name": node},
        "spec": {"nodeId": node, "heartbeatTimeoutSeconds": timeout}
    }))
    .unwrap()
}

async fn state_of(api: &Api<AmpWorker>, name: &str) -> Option<String> {
    api.get_opt(name).await.ok()??.status?.state
}

async fn wait_state(api: &Api<AmpWorker>, name: &str, want: &str, within: Duration) -> Duration {
    let started = std::time::Instant::now();
    eventually(within, || async {
        (state_of(api, name).await.as_deref() == Some(want)).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("{name} not {want} within {within:?}"));
    started.elapsed()
}

async fn events_of(events: &Api<Event>, name: &str) -> Vec<(String, String)> {
    let list = events.list(&ListParams::default()).await.unwrap();
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.type_.unwrap_or_default()))
        .collect()
}

/// A discovered AmpWorker's `managedFields`: the operator made it (its labels,
/// annotation and spec) and owns its status whole, in one entry per write kind.
fn assert_managed_by_the_operator(w: &AmpWorker) {
    type Entry<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        serde_json::Value,
    );
    let entries: Vec<Entry> = w
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|e| {
            (
                e.manager.as_deref(),
                e.operation.as_deref(),
                e.subresource.as_deref(),
                serde_json::to_value(&e.fields_v1).unwrap(),
            )
        })
        .collect();
    let made = json!({
        "f:metadata": {"f:annotations": {".": {}, "f:amp.io/node-id": {}},
                       "f:labels": {".": {}, "f:amp.io/discovered": {}}},
        "f:spec": {".": {}, "f:nodeId": {}}
    });
    assert!(
        entries.contains(&(Some("amp-operator"), Some("Update"), None, made)),
        "{entries:?}"
    );
    let statuses: Vec<_> = entries.iter().filter(|e| e.2 == Some("status")).collect();
    assert!(!statuses.is_empty(), "{entries:?}");
    for (manager, _, _, fields) in statuses {
        assert_eq!(
            (*manager, fields),
            (Some("amp-operator"), &json!({"f:status": {}}))
        );
    }
    assert!(
        entries.len() <= 3,
        "a create, an apply, a refresh: {entries:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stops_kills_freezes_restarts_and_retirement_read_truthfully() {
    let Some(plane) =
        envtest::require("stops_kills_freezes_restarts_and_retirement_read_truthfully").await
    else {
        return;
    };
    let ns = plane.namespace("lifecycle").await.unwrap();
    let client = plane.client().await.unwrap();
    let api: Api<AmpWorker> = Api::namespaced(client.clone(), &ns);
    let events: Api<Event> = Api::namespaced(client, &ns);
    let (pg, pool) = migrated_db().await;
    api.create(&PostParams::default(), &watched("w-frozen", 5))
        .await
        .unwrap();

    let spawn = |id: &str| Proc::spawn(id, &mut worker(&pg.url(), id, "v1"));
    let term = spawn("w-term");
    let kill = spawn("w-kill");
    let frozen = spawn("w-frozen");
    let retired = spawn("w-retired");
    for id in ["w-term", "w-kill", "w-frozen", "w-retired"] {
        wait_registered(&pool, id, Duration::from_secs(20)).await;
    }
    let _op = Proc::spawn(
        "operator",
        &mut common::operator(plane.kubeconfig(), &ns, &pg.url(), "op-lifecycle"),
    );
    for id in ["w-term", "w-kill", "w-frozen", "w-retired"] {
        wait_state(&api, id, "Ready", Duration::from_secs(60)).await;
    }

    // SIGTERM: the lock is released at once, so the verdict is at once too.
    let (status, _, _) = term.terminate();
    assert!(status.success());
    let took = wait_state(&api, "w-term", "Stopped", Duration::from_secs(10)).await;
    assert!(took < Duration::from_secs(5), "Stopped after {took:?}");
    let w = api.get("w-term").await.unwrap();
    let healthy = w
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Healthy")
        .unwrap();
    assert_eq!(
        (healthy.status.as_str(), healthy.reason.as_str()),
        ("False", "WorkerStopped")
    );
    eprintln!("LIFECYCLE: SIGTERM -> Stopped in {took:?}");
    assert_managed_by_the_operator(&api.get("w-term").await.unwrap());

    // SIGKILL: the kernel closes the socket, PostgreSQL ends the session and its lock.
    kill.signal(libc::SIGKILL);
    let took = wait_state(&api, "w-kill", "Stopped", Duration::from_secs(10)).await;
    eprintln!("LIFECYCLE: SIGKILL -> Stopped in {took:?}");

    // SIGSTOP: alive, lock held, silent: Stale after its 5 s timeout, with a Warning.
    frozen.signal(libc::SIGSTOP);
    let took = wait_state(&api, "w-frozen", "Stale", Duration::from_secs(20)).await;
    eprintln!("LIFECYCLE: SIGSTOP -> Stale in {took:?} (timeout 5 s)");
    frozen.signal(libc::SIGCONT);
    wait_state(&api, "w-frozen", "Ready", Duration::from_secs(20)).await;

    let term_events = eventually(Duration::from_secs(10), || async {
        let e = events_of(&events, "w-term").await;
        (!e.is_empty()).then_some(e)
    })
    .await
    .unwrap();
    assert_eq!(
        term_events,
        [("WorkerStopped".to_string(), "Normal".to_string())]
    );
    let frozen_events = events_of(&events, "w-frozen").await;
    assert!(
        frozen_events.contains(&("WorkerStale".to_string(), "Warning".to_string())),
        "{frozen_events:?}"
    );
    assert!(
        !frozen_events.iter().any(|(r, _)| r == "WorkerStopped"),
        "{frozen_events:?}"
    );

    // A real restart: the process starts again, registeredAt and RESTARTS move.
    let _term_again = spawn("w-term");
    wait_state(&api, "w-term", "Ready", Duration::from_secs(30)).await;
    let restarts = eventually(Duration::from_secs(10), || async {
        let n = api.get("w-term").await.ok()?.status?.restart_count;
        (n == 1).then_some(n)
    })
    .await;
    assert_eq!(restarts, Some(1));
    // The frozen one never restarted: its process only paused.
    assert_eq!(
        api.get("w-frozen")
            .await
            .unwrap()
            .status
            .unwrap()
            .restart_count,
        0
    );

    // Retiring: stop it, delete its discovered object, and it stays deleted.
    let _ = retired.terminate();
    wait_state(&api, "w-retired", "Stopped", Duration::from_secs(10)).await;
    api.delete("w-retired", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let names: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .iter()
        .map(|w| w.name_any())
        .collect();
    assert!(
        !names.contains(&"w-retired".to_string()),
        "re-created: {names:?}"
    );
    drop(kill);
}
