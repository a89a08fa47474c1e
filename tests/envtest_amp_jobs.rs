//! The real `ampd operator`, on a read-only DB role, judging Amp's jobs on a nightly
//! Amp-shaped metadata DB (real kube-apiserver, envtest): a worker with running jobs, one
//! that never picks up its job, and one that dies with running jobs.

mod common;

use std::time::Duration;

use amp_operator::metadata_db;
use amp_operator::operator::crd::{AmpWorker, AmpWorkerFleet};
use amp_operator::testing::amp_db::{self, AmpJobs, AmpSchema, AmpWorkerSim, amp_info};
use amp_operator::testing::envtest;
use amp_operator::testing::postgres::{TempPostgres, eventually};
use common::Proc;
use common::cluster::kubectl;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;

fn condition(w: &AmpWorker, type_: &str) -> Option<(String, String, String)> {
    w.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_shows_each_workers_jobs_and_flags_stranded_and_unpicked_ones() {
    let Some(plane) = envtest::require("the_operator_shows_each_workers_jobs").await else {
        return;
    };
    let ns = plane.namespace("amp-jobs").await.unwrap();
    let pg = TempPostgres::start().unwrap();
    let pool = metadata_db::connect_pool(&pg.url(), "tests", 3)
        .await
        .unwrap();
    amp_db::create_with_jobs(&pool, AmpSchema::Current, Some(AmpJobs::Nightly))
        .await
        .unwrap();
    let version = "v0.0.35-275-g188bfd41";
    let mut sims = Vec::new();
    for id in ["busy", "deaf", "doomed"] {
        sims.push(
            AmpWorkerSim::start(&pg.url(), id, amp_info(version))
                .await
                .unwrap(),
        );
    }
    let job = |node: &'static str, status: &'static str, age: u64| {
        let pool = pool.clone();
        async move {
            amp_db::add_job(
                &pool,
                AmpJobs::Nightly,
                node,
                node,
                status,
                Duration::from_secs(age),
            )
            .await
            .unwrap()
        }
    };
    job("busy", "RUNNING", 30).await;
    job("busy", "RUNNING", 30).await;
    let stuck = job("deaf", "SCHEDULED", 600).await;
    job("doomed", "RUNNING", 30).await;
    job("doomed", "RUNNING", 30).await;
    for statement in [
        "CREATE ROLE amp_reader LOGIN",
        "ALTER ROLE amp_reader SET default_transaction_read_only = on",
        "GRANT SELECT ON workers, jobs_status TO amp_reader",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let url = format!("postgres://amp_reader@127.0.0.1:{}/postgres", pg.port());
    let client = plane.client().await.unwrap();
    let fleets: Api<AmpWorkerFleet> = Api::namespaced(client.clone(), &ns);
    let fleet: AmpWorkerFleet = serde_json::from_value(json!({
        "apiVersion": "amp.io/v1alpha1", "kind": "AmpWorkerFleet",
        "metadata": {"name": "amp"}, "spec": {"version": version}
    }))
    .unwrap();
    fleets.create(&PostParams::default(), &fleet).await.unwrap();
    let _op = Proc::spawn(
        "operator",
        common::operator(plane.kubeconfig(), &ns, &url, "op-jobs").args(["--jobs-interval", "1s"]),
    );
    let api: Api<AmpWorker> = Api::namespaced(client.clone(), &ns);
    let get = |name: &'static str| {
        let api = api.clone();
        async move { api.get_opt(name).await.ok().flatten() }
    };

    // A healthy worker with running jobs: JOBS 2, Ready.
    let busy = eventually(Duration::from_secs(60), || async {
        get("busy").await.filter(|w| {
            w.status
                .as_ref()
                .and_then(|s| s.jobs.as_ref())
                .is_some_and(|j| j.running == 2)
        })
    })
    .await
    .expect("busy shows its jobs");
    assert_eq!(
        busy.status.as_ref().unwrap().state.as_deref(),
        Some("Ready")
    );
    assert_eq!(
        condition(&busy, "AcceptingJobs").map(|c| (c.0, c.1)),
        Some(("True".into(), "JobsPickedUp".into()))
    );

    // A heartbeating worker that never picked up job `stuck`: not accepting, not Ready.
    let deaf = eventually(Duration::from_secs(30), || async {
        get("deaf")
            .await
            .filter(|w| condition(w, "AcceptingJobs").is_some_and(|c| c.0 == "False"))
    })
    .await
    .expect("deaf is not accepting jobs");
    let (_, reason, message) = condition(&deaf, "AcceptingJobs").unwrap();
    assert_eq!(reason, "JobNotPickedUp");
    assert!(
        message.starts_with(&format!(
            "job {stuck} has been SCHEDULED on this worker since "
        )),
        "{message}"
    );
    assert_eq!(
        condition(&deaf, "Ready").map(|c| (c.0, c.1)),
        Some(("False".into(), "JobNotPickedUp".into()))
    );
    assert_eq!(
        deaf.status.as_ref().unwrap().state.as_deref(),
        Some("NotAcceptingJobs")
    );

    // A worker dies with two running jobs: stranded, one Warning, and the fleet says so.
    sims.pop();
    let doomed = eventually(Duration::from_secs(30), || async {
        get("doomed")
            .await
            .filter(|w| condition(w, "JobsStranded").is_some_and(|c| c.0 == "True"))
    })
    .await
    .expect("doomed's jobs are stranded");
    assert_eq!(
        doomed.status.as_ref().unwrap().state.as_deref(),
        Some("Stopped")
    );
    assert!(condition(&doomed, "JobsStranded").unwrap().2.starts_with(
        "2 unfinished jobs (2 RUNNING) are assigned to this worker, which is Stopped;"
    ));
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let stranded = eventually(Duration::from_secs(20), || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        let found: Vec<Event> = list
            .items
            .into_iter()
            .filter(|e| {
                e.reason.as_deref() == Some("JobsStranded")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("doomed")
            })
            .collect();
        (!found.is_empty()).then_some(found)
    })
    .await
    .expect("a JobsStranded event");
    assert_eq!(stranded.len(), 1, "{stranded:?}");
    assert_eq!(stranded[0].type_.as_deref(), Some("Warning"));

    let fleet = eventually(Duration::from_secs(30), || async {
        let f = fleets.get_opt("amp").await.ok()??;
        f.status
            .as_ref()?
            .jobs
            .as_ref()
            .filter(|j| j.stranded == 2)?;
        Some(f)
    })
    .await
    .expect("the fleet counts the stranded jobs");
    let status = fleet.status.unwrap();
    let jobs = status.jobs.unwrap();
    assert_eq!((jobs.active, jobs.running, jobs.scheduled), (5, 4, 1));
    assert_eq!(jobs.stranded_workers, ["doomed"]);
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "JobsStranded" && c.status == "True" && c.reason == "JobsStranded")
    );

    // docs/amp.md, "Jobs: stranded and not picked up", step 1, as a user runs it (the
    // doc's namespace `amp` is this test's).
    let kubeconfig = plane.kubeconfig();
    // `-n amp` is this test's namespace; the fleet is named `amp` here too.
    let documented: Vec<Vec<String>> =
        common::doc_section_commands("docs/amp.md", "Jobs: stranded and not picked up")
            .into_iter()
            .filter(|c| c.starts_with("kubectl "))
            .map(|c| {
                let mut args: Vec<String> = c.split_whitespace().skip(1).map(Into::into).collect();
                if let Some(at) = args.iter().position(|a| a == "-n") {
                    args[at + 1] = ns.clone();
                }
                args
            })
            .collect();
    let run = |args: &[String]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kubectl(kubeconfig, &args, None)
    };
    assert_eq!(
        documented,
        [
            vec![
                "get".to_owned(),
                "ampworkers".into(),
                "-n".into(),
                ns.clone()
            ],
            vec![
                "describe".into(),
                "ampworkerfleet".into(),
                "amp".into(),
                "-n".into(),
                ns.clone()
            ],
        ],
        "docs/amp.md's kubectl commands, each run below"
    );
    let table = run(&documented[0]);
    let row = |name: &str| -> Vec<String> {
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{table}"));
        line.split_whitespace().take(5).map(str::to_owned).collect()
    };
    assert!(
        table.starts_with("NAME") && table.lines().next().unwrap().contains(" JOBS "),
        "{table}"
    );
    assert_eq!(row("busy"), ["busy", "busy", "Ready", version, "2"]);
    assert_eq!(
        row("deaf"),
        ["deaf", "deaf", "NotAcceptingJobs", version, "1"]
    );
    assert_eq!(row("doomed"), ["doomed", "doomed", "Stopped", version, "2"]);
    let described = run(&documented[1]);
    // The fleet's JobsStranded condition names the first affected workers.
    assert!(
        described.contains(
            "Message:               2 unfinished jobs wait on workers that are Stale, Stopped or not registered, e.g. doomed;"
        ) && described.contains("Type:                  JobsStranded")
            && described.contains("Stranded Workers:\n      doomed\n"),
        "{described}"
    );

    // The reader wrote nothing: the legacy status is as Amp left it.
    let legacy: Vec<String> = sqlx::query_scalar("SELECT DISTINCT status FROM jobs")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(legacy, ["SCHEDULED"]);
}
