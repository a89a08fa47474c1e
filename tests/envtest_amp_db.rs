//! The real `ampd operator`, on a read-only DB role, mirroring a metadata DB that Amp's
//! own workers write (Unicode and 200-character node ids, Amp's `info` forms, a 2 MB
//! version) into AmpWorkers on a real kube-apiserver (envtest).

mod common;

use std::time::Duration;

use amp_operator::metadata_db;
use amp_operator::operator::crd::AmpWorker;
use amp_operator::operator::naming::object_name;
use amp_operator::testing::amp_db::{self, AmpSchema, AmpWorkerSim, amp_info};
use amp_operator::testing::envtest;
use amp_operator::testing::postgres::{TempPostgres, eventually};
use common::Proc;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;

/// A login role that can only read, as docs/amp.md tells users to create.
async fn read_only_url(pg: &TempPostgres, pool: &sqlx::PgPool) -> String {
    for statement in [
        "CREATE ROLE amp_reader LOGIN",
        "ALTER ROLE amp_reader SET default_transaction_read_only = on",
        "GRANT SELECT ON workers TO amp_reader",
    ] {
        sqlx::query(statement).execute(pool).await.unwrap();
    }
    format!("postgres://amp_reader@127.0.0.1:{}/postgres", pg.port())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_mirrors_amp_s_own_workers() {
    let Some(plane) = envtest::require("the_operator_mirrors_amp_s_own_workers").await else {
        return;
    };
    let ns = plane.namespace("amp-db").await.unwrap();
    let pg = TempPostgres::start().unwrap();
    let pool = metadata_db::connect_pool(&pg.url(), "tests", 3)
        .await
        .unwrap();
    amp_db::create(&pool, AmpSchema::Current).await.unwrap();
    let long_id = format!("w{}", "x".repeat(199));
    let huge_version = "v".repeat(2 * 1024 * 1024);
    let workers = [
        ("amp-a", amp_info("v0.0.35-275-g188bfd41")),
        ("ünicode-wörker", amp_info("nightly-188bfd4")),
        (long_id.as_str(), amp_info("v0.0.35-275-g188bfd41")),
        ("huge-info", json!({"version": huge_version})),
    ];
    let mut sims = Vec::new();
    for (id, info) in &workers {
        sims.push(
            AmpWorkerSim::start(&pg.url(), id, info.clone())
                .await
                .unwrap(),
        );
    }
    let url = read_only_url(&pg, &pool).await;
    let _op = Proc::spawn(
        "operator",
        &mut common::operator(plane.kubeconfig(), &ns, &url, "op-amp"),
    );

    let api: Api<AmpWorker> = Api::namespaced(plane.client().await.unwrap(), &ns);
    for (id, _) in &workers {
        let name = object_name(id);
        let healthy = eventually(Duration::from_secs(60), || async {
            let w = api.get_opt(&name).await.ok()??;
            let status = w.status.clone()?;
            let ok = status
                .conditions
                .iter()
                .any(|c| c.type_ == "Healthy" && c.status == "True");
            ok.then_some(w)
        })
        .await
        .unwrap_or_else(|| panic!("{id}: no Healthy AmpWorker {name}"));
        assert_eq!(healthy.spec.node_id, *id);
        let status = healthy.status.unwrap();
        assert_eq!(status.node_id.as_deref(), Some(*id));
        let info = status.info.unwrap();
        match *id {
            "huge-info" => assert_eq!(
                info.version.map(|v| v.len()),
                Some(metadata_db::MAX_INFO_FIELD_BYTES)
            ),
            "ünicode-wörker" => {
                assert_eq!(info.version.as_deref(), Some("nightly-188bfd4"));
                assert_eq!(
                    info.commit_timestamp.as_deref(),
                    Some("2026-03-12T09:38:36Z")
                );
            }
            _ => assert_eq!(info.version.as_deref(), Some("v0.0.35-275-g188bfd41")),
        }
    }

    // One Warning says why the version is cut.
    let events: Api<Event> = Api::namespaced(plane.client().await.unwrap(), &ns);
    let cut = eventually(Duration::from_secs(20), || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        let cut: Vec<Event> = list
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("InfoTruncated"))
            .collect();
        (!cut.is_empty()).then_some(cut)
    })
    .await
    .expect("an InfoTruncated event");
    assert_eq!(cut.len(), 1, "{cut:?}");
    assert_eq!(cut[0].type_.as_deref(), Some("Warning"));
    assert_eq!(
        cut[0].note.as_deref(),
        Some(
            "the metadata DB row of worker huge-info has info.version (2097152 bytes); the status shows the first 256 bytes"
        )
    );
    assert_eq!(
        cut[0].regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("huge-info")
    );

    // The read-only role wrote nothing: Amp's rows are as Amp's workers left them.
    let info: serde_json::Value =
        sqlx::query_scalar("SELECT info FROM workers WHERE node_id = 'ünicode-wörker'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(info, amp_info("nightly-188bfd4"));
}
