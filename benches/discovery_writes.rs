//! What the API server spends on each discovered worker: the create and the first
//! status apply the operator writes for it (with a watch open, as the operator's), on a
//! fresh kube-apiserver + etcd (envtest) per round, with the CRDs as checked in (each
//! status atomic for server-side apply) and with the AmpWorker status per-field (the
//! CRD before `x-kubernetes-map-type: atomic`), alternately. Prints the API server's and
//! etcd's CPU per worker and the object's size as served.
//!
//!   cargo bench --bench discovery_writes                         # 15,000 workers, 2 rounds
//!   AMP_BENCH_WORKERS=5000 AMP_BENCH_ROUNDS=1 cargo bench --bench discovery_writes

mod support;
use support::{cpu_secs, env_or};

use std::time::Instant;

use amp_operator::operator::crd::{AmpWorker, AmpWorkerStatus, FIELD_MANAGER, WorkerBuildInfo};
use amp_operator::operator::plan::discovered_worker;
use amp_operator::testing::envtest::ControlPlane;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher;

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(bench());
}

async fn bench() {
    // The API server's audit log is off: its cost would be the same in both variants.
    if std::env::var_os("AMP_ENVTEST_AUDIT").is_none() {
        // SAFETY: set before any other thread of this process reads the environment.
        unsafe { std::env::set_var("AMP_ENVTEST_AUDIT", "0") };
    }
    let n: usize = env_or("AMP_BENCH_WORKERS", 15_000);
    let rounds: usize = env_or("AMP_BENCH_ROUNDS", 2);
    println!(
        "discovery writes: {n} workers a round (a create and a status apply each, 16 in flight, one watch)"
    );
    for round in 1..=rounds {
        for atomic in [false, true] {
            let plane = ControlPlane::start().await.expect("envtest control plane");
            if !atomic {
                per_field_status(&plane).await;
            }
            let figures = discover(&plane, n).await;
            println!(
                "round {round}, AmpWorker status {}: {}",
                if atomic {
                    "atomic (as shipped)"
                } else {
                    "per field (before)"
                },
                figures
            );
        }
    }
}

/// The AmpWorker CRD as checked in, but its status per field for server-side apply.
async fn per_field_status(plane: &ControlPlane) {
    let api: Api<CustomResourceDefinition> = Api::all(plane.client().await.expect("client"));
    let mut crd = api.get("ampworkers.amp.io").await.expect("CRD");
    let status = crd.spec.versions[0]
        .schema
        .as_mut()
        .and_then(|s| s.open_api_v3_schema.as_mut())
        .and_then(|s| s.properties.as_mut())
        .and_then(|p| p.get_mut("status"))
        .expect("the status schema");
    status.x_kubernetes_map_type = None;
    crd.metadata.managed_fields = None;
    api.replace("ampworkers.amp.io", &Default::default(), &crd)
        .await
        .expect("replace the CRD");
    // The API server serves a new schema a moment after storing it.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
}

/// A status as the operator applies it to a worker it discovered healthy.
fn status(node_id: &str) -> AmpWorkerStatus {
    let at = |s: &str| -> chrono::DateTime<chrono::Utc> { s.parse().expect("time") };
    let condition = |type_: &str, reason: &str, message: &str| Condition {
        type_: type_.into(),
        status: "True".into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: Some(1),
        last_transition_time: Time("2026-12-07T15:12:24Z".parse().expect("time")),
    };
    AmpWorkerStatus {
        observed_generation: Some(1),
        state: Some("Ready".into()),
        node_id: Some(node_id.into()),
        info: Some(WorkerBuildInfo {
            version: Some("v0.0.22-15-g8b065bde".into()),
            commit_sha: Some("07f7f484bf39fabe5c3dda7f40c3cad1fb1ef6f9".into()),
            commit_timestamp: Some("2026-12-07T13:43:51Z".into()),
            build_date: Some("2026-12-07".into()),
        }),
        expected_version: Some("v0.0.22-15-g8b065bde".into()),
        short_commit: Some("07f7f484bf39".into()),
        created_at: Some(at("2026-12-07T15:12:18Z")),
        registered_at: Some(at("2026-12-07T15:12:18Z")),
        heartbeat_at: Some(at("2026-12-07T15:13:08Z")),
        conditions: vec![
            condition(
                "Registered",
                "WorkerRegistered",
                "the node id has a row in the metadata DB",
            ),
            condition(
                "Healthy",
                "HeartbeatFresh",
                "heartbeat within the 30s timeout",
            ),
            condition(
                "VersionMatched",
                "VersionMatches",
                "running the expected version v0.0.22-15-g8b065bde",
            ),
            condition(
                "Ready",
                "WorkerReady",
                "registered, heartbeating and on the expected version",
            ),
        ],
        ..AmpWorkerStatus::default()
    }
}

/// `n` workers discovered as the operator writes them; the figures as one line.
async fn discover(plane: &ControlPlane, n: usize) -> String {
    let (apiserver, etcd) = plane.pids().expect("a control plane of our own");
    let client = plane.client().await.expect("client");
    let ns = plane.namespace("discovery").await.expect("namespace");
    let workers: Api<AmpWorker> = Api::namespaced(client, &ns);
    let watch = tokio::spawn(
        watcher(workers.clone(), watcher::Config::default()).try_for_each(|_| async { Ok(()) }),
    );
    let (a0, e0, t0) = (cpu_secs(apiserver), cpu_secs(etcd), Instant::now());
    let create = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    let written = futures::stream::iter(0..n)
        .map(|i| {
            let (workers, create, apply) = (&workers, &create, &apply);
            async move {
                let node_id = format!("worker-{i:05}");
                let obj = discovered_worker(&node_id);
                workers.create(create, &obj).await.ok()?;
                let body = serde_json::json!({
                    "apiVersion": "amp.io/v1alpha1", "kind": "AmpWorker", "status": status(&node_id)
                });
                let name = obj.metadata.name.clone().unwrap_or_default();
                workers
                    .patch_status(&name, apply, &Patch::Apply(&body))
                    .await
                    .ok()
            }
        })
        .buffer_unordered(16)
        .filter(|r| std::future::ready(r.is_some()))
        .count()
        .await;
    let took = t0.elapsed().as_secs_f64();
    // The watch's last events, then the CPU.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let (a1, e1) = (cpu_secs(apiserver), cpu_secs(etcd));
    watch.abort();
    let served = workers
        .get(
            &discovered_worker("worker-00000")
                .metadata
                .name
                .unwrap_or_default(),
        )
        .await
        .expect("an object");
    let size = serde_json::to_vec(&served).map_or(0, |v| v.len());
    let managed = serde_json::to_vec(&served.metadata.managed_fields).map_or(0, |v| v.len());
    format!(
        "{written}/{n} in {took:.1} s; kube-apiserver {:.2} ms CPU a worker, etcd {:.2} ms; object {size} B as served (managedFields {managed} B)",
        (a1 - a0) * 1000.0 / written.max(1) as f64,
        (e1 - e0) * 1000.0 / written.max(1) as f64,
    )
}
