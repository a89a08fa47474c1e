//! Every bash block of the user's troubleshooting guide (tests/seeds/, a verbatim copy
//! of shared/seeds/000_…), run unmodified with bash + jq against a live stack, with the
//! documented result asserted; and the ampctl one-command equivalents giving the same
//! answers on the same fleet.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use amp_operator::testing::postgres::eventually;
use common::amp_api::{AmpApi, AmpWorker};
use common::*;
use regex::Regex;

const GUIDE: &str = include_str!("seeds/worker-troubleshooting.md");
const V22: &str = "v0.0.22-15-g8b065bde";
const V21: &str = "v0.0.21-8-ga1b2c3d4";
const AMPCTL: &str = env!("CARGO_BIN_EXE_ampctl");

fn blocks() -> Vec<String> {
    Regex::new(r"(?s)```bash\n(.*?)```")
        .unwrap()
        .captures_iter(GUIDE)
        .map(|c| c[1].to_owned())
        .collect()
}

struct Run {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

struct Shell {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    path: String,
    admin_url: String,
}

impl Shell {
    /// A work directory, and a PATH whose `ampctl` is ours, against `admin_url`.
    fn new(admin_url: String) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink(AMPCTL, bin.join("ampctl")).unwrap();
        let dir = tmp.path().join("work");
        std::fs::create_dir(&dir).unwrap();
        Self {
            _tmp: tmp,
            dir,
            path: format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
            admin_url,
        }
    }

    fn bash(&self, script: &str, timeout_secs: Option<u32>) -> Run {
        let file = self.dir.join("block.sh");
        std::fs::write(&file, script).unwrap();
        let mut cmd = match timeout_secs {
            Some(t) => {
                let mut c = Command::new("timeout");
                c.args([t.to_string(), "bash".into()]);
                c
            }
            None => Command::new("bash"),
        };
        let out = cmd
            .arg(&file)
            .current_dir(&self.dir)
            .env("PATH", &self.path)
            .env("AMP_ADMIN_URL", &self.admin_url)
            .output()
            .expect("run bash");
        Run {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code(),
        }
    }

    fn ampctl(&self, args: &[&str]) -> Run {
        let out = Command::new(AMPCTL)
            .args(args)
            .env("AMP_ADMIN_URL", &self.admin_url)
            .output()
            .unwrap();
        Run {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code(),
        }
    }
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_seed_workflow_runs_verbatim_and_matches_ampctl() {
    if let Ok(shared) = std::fs::read_to_string("../shared/seeds/000_065a41b21abc8929.txt") {
        assert_eq!(
            shared, GUIDE,
            "tests/seeds/worker-troubleshooting.md must be a verbatim copy of the seed"
        );
    }
    let blocks = blocks();
    assert_eq!(blocks.len(), 22, "the guide's bash blocks");

    // The fleet: worker-01 restarted, 01/02/04 on v0.0.22, 03 on v0.0.21, 04 stopped and stale.
    let (pg, pool) = migrated_db().await;
    let first = spawn_worker(&pg.url(), "worker-01", V22);
    wait_registered(&pool, "worker-01", Duration::from_secs(10)).await;
    let _w2 = spawn_worker(&pg.url(), "worker-02", V22);
    let _w3 = spawn_worker(&pg.url(), "worker-03", V21);
    let w4 = spawn_worker(&pg.url(), "worker-04", V22);
    for id in ["worker-02", "worker-03", "worker-04"] {
        wait_registered(&pool, id, Duration::from_secs(10)).await;
    }
    first.terminate();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let _w1 = spawn_worker(&pg.url(), "worker-01", V22);
    eventually(Duration::from_secs(10), || async {
        let restarted: bool = sqlx::query_scalar(
            "SELECT date_trunc('second', registered_at) > date_trunc('second', created_at) FROM workers WHERE node_id = 'worker-01'",
        )
        .fetch_one(&pool)
        .await
        .ok()?;
        restarted.then_some(())
    })
    .await
    .expect("worker-01 re-registered");
    w4.terminate();
    sqlx::query("UPDATE workers SET heartbeat_at = now() - interval '2 minutes' WHERE node_id = 'worker-04'")
        .execute(&pool)
        .await
        .unwrap();

    let (_api, addr) = common::start_admin_api(&pg.url(), &[]).await;
    let sh = Shell::new(format!("http://{addr}"));
    guide_gives_the_documented_results(
        &sh,
        &["worker-01", "worker-02", "worker-03", "worker-04"],
        Liveness::Known,
    );
}

/// The same workflows, verbatim, against Amp's own Admin API wire format (the stand-in
/// of tests/common/amp_api.rs): its list carries only node ids and `+00:00` fractional
/// heartbeats, which ampctl `--json` rewrites into the whole-second `Z` form jq's
/// `fromdateiso8601` parses, so the stale-worker filters work there too.
#[test]
fn every_seed_workflow_runs_verbatim_against_amps_admin_api() {
    let now = chrono::Utc::now();
    let created = now - chrono::TimeDelta::hours(3);
    let mut w1 = AmpWorker::live("worker-01", V22, created);
    w1.registered_at = now - chrono::TimeDelta::minutes(10);
    let mut w4 = AmpWorker::live("worker-04", V22, created);
    w4.heartbeat_at = Some(now - chrono::TimeDelta::minutes(2));
    let fleet = vec![
        w1,
        AmpWorker::live("worker-02", V22, created),
        AmpWorker::live("worker-03", V21, created),
        w4,
    ];
    let api = AmpApi::start(fleet, &[], Duration::ZERO);
    let sh = Shell::new(api.url());
    // Amp lists the newest registration first.
    guide_gives_the_documented_results(
        &sh,
        &["worker-04", "worker-03", "worker-02", "worker-01"],
        Liveness::Unknown,
    );
}

/// Whether the server says which worker processes run (ours: `running`; Amp's: no).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Liveness {
    Known,
    Unknown,
}

/// One line per worker in the server's `order`.
fn per_worker(order: &[&str], line: impl Fn(&str) -> String) -> String {
    order.iter().map(|id| line(id) + "\n").collect()
}

fn version_of(id: &str) -> &'static str {
    if id == "worker-03" { V21 } else { V22 }
}

/// Every bash block of the guide on the fleet both tests set up (worker-01 restarted,
/// 01/02/04 on v0.0.22, 03 on v0.0.21, 04 stopped and stale), listed in `order`; then
/// the ampctl one-command equivalents, with the same answers.
#[allow(clippy::regex_creation_in_loops)]
fn guide_gives_the_documented_results(sh: &Shell, order: &[&str], liveness: Liveness) {
    let blocks = blocks();
    let work = &sh.dir;
    let ts = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ";
    let mut ran = BTreeMap::new();

    for (i, block) in blocks.iter().enumerate() {
        let run = match i {
            // `watch` redraws forever on a terminal; `ampctl worker list --watch` replaces it (below).
            15 => continue,
            // An endless logging loop; its first iteration is what we can check.
            17 => sh.bash(block, Some(3)),
            _ => sh.bash(block, None),
        };
        let out = &run.stdout;
        let ctx = format!(
            "block {i}:\n{block}\nstdout:\n{out}\nstderr:\n{}",
            run.stderr
        );
        match i {
            0 => {
                assert!(out.starts_with("NODE ID"), "{ctx}");
                assert_eq!(lines(out).len(), 5, "{ctx}");
            }
            1 => {
                let re = Regex::new(&format!(
                    r"^⚠ Stale worker: worker-04 \(last seen: {ts}\)\n$"
                ))
                .unwrap();
                assert!(re.is_match(out), "{ctx}");
            }
            2 => assert_eq!(
                out,
                &format!(
                    "{V22}\n{}",
                    per_worker(order, |id| format!("{id}: {}", version_of(id)))
                ),
                "{ctx}"
            ),
            3 => assert_eq!(out, &format!("{V21}\n{V22}\n"), "{ctx}"),
            4 => assert_eq!(out, &format!("      1 {V21}\n      3 {V22}\n"), "{ctx}"),
            5 => {
                let re = Regex::new(&format!(
                    r"^Created:     ({ts})\nRegistered:  ({ts})\nHeartbeat:   {ts}\n$"
                ))
                .unwrap();
                let c = re.captures(out).unwrap_or_else(|| panic!("{ctx}"));
                assert!(
                    c[2] > c[1],
                    "registered_at > created_at shows the restart: {ctx}"
                );
            }
            6 => assert_eq!(out, "Uptime: 0 days since last restart\n", "{ctx}"),
            7 => {
                let one = format!(
                    r"worker-0\d:\n  Created:    {ts}\n  Registered: {ts}\n  Heartbeat:  {ts}\n\n"
                );
                assert!(
                    Regex::new(&format!("^({one}){{4}}$"))
                        .unwrap()
                        .is_match(out),
                    "{ctx}"
                );
            }
            8 => {
                assert!(
                    Regex::new(&format!(r"(?m)^worker-01\s+Healthy\s+{V22}\s"))
                        .unwrap()
                        .is_match(out),
                    "{ctx}"
                );
                assert!(out.contains("Node ID:          worker-01"), "{ctx}");
                assert!(out.contains(&format!("\"version\": \"{V22}\"")), "{ctx}");
            }
            9 => assert!(
                out.contains("Heartbeat:") && out.contains("re-registered since creation"),
                "{ctx}"
            ),
            10 => assert_eq!(
                out,
                &per_worker(order, |id| format!("{id}: {}", version_of(id))),
                "{ctx}"
            ),
            11 => assert_eq!(out, "", "no duplicate node ids: {ctx}"),
            12 => assert_eq!(out, "worker-04\n", "{ctx}"),
            13 => assert_eq!(
                out,
                &per_worker(order, |id| format!("{id}: sha-{}", version_of(id))),
                "{ctx}"
            ),
            14 => {
                let on_v22: Vec<&str> = order
                    .iter()
                    .copied()
                    .filter(|id| version_of(id) == V22)
                    .collect();
                assert_eq!(out, &per_worker(&on_v22, str::to_owned), "{ctx}");
            }
            16 => {
                let re = Regex::new(&format!(r"^ALERT: Worker worker-04 inactive since {ts}\n$"))
                    .unwrap();
                assert!(re.is_match(out), "{ctx}");
            }
            17 => {
                assert_eq!(run.code, Some(124), "stopped by timeout: {ctx}");
                assert!(
                    Regex::new(r"^\S+: 4 workers active\n$")
                        .unwrap()
                        .is_match(out),
                    "{ctx}"
                );
            }
            18 => assert_eq!(out, &format!("      3 {V22}\n      1 {V21}\n"), "{ctx}"),
            19 => {
                // The guide's check-workers.sh reads `jq -r '.workers[]'` (multi-line objects)
                // line by line, and loses EXIT_CODE in the pipeline's subshell, so it cannot
                // report per-worker health whatever the API says. It still runs and exits 0.
                assert_eq!(run.code, Some(0), "{ctx}");
                assert!(out.starts_with("Checking worker health...\n"), "{ctx}");
            }
            20 => {
                assert_eq!(
                    out,
                    &format!(
                        "Verifying deployment: {V22}\n{}",
                        per_worker(order, |id| match version_of(id) {
                            V22 => format!("✓ {id}: {V22}"),
                            v => format!("❌ {id}: {v} (expected: {V22})"),
                        })
                    ),
                    "{ctx}"
                );
                assert_eq!(
                    run.code,
                    Some(0),
                    "the guide's script loses EXIT_CODE in a subshell: {ctx}"
                );
            }
            21 => {
                assert_eq!(out, "Inventory saved to workers-inventory.csv\n", "{ctx}");
                let csv = std::fs::read_to_string(work.join("workers-inventory.csv")).unwrap();
                assert_eq!(lines(&csv).len(), 5, "{csv}");
                ran.insert("csv", csv);
            }
            _ => unreachable!("block {i}"),
        }
    }

    // The one-command equivalents give the same answers on the same fleet.
    let stale = sh.ampctl(&["worker", "list", "--stale-after", "30s", "--json"]);
    let ids: Vec<String> =
        serde_json::from_str::<serde_json::Value>(&stale.stdout).unwrap()["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["node_id"].as_str().unwrap().to_owned())
            .collect();
    assert_eq!(ids, ["worker-04"]);
    assert_eq!(sh.bash(&blocks[12], None).stdout, "worker-04\n");

    let versions = sh.ampctl(&["worker", "versions"]);
    assert_eq!(
        versions.stdout,
        sh.bash(&blocks[18], None).stdout,
        "versions == sort | uniq -c | sort -rn"
    );
    assert!(
        versions
            .stderr
            .contains("⚠ version mismatch: 2 versions running")
    );
    assert_eq!(versions.code, Some(0));
    assert_eq!(
        sh.ampctl(&["worker", "versions", "--expect-single"]).code,
        Some(1)
    );

    // Live workers heartbeat between the two exports, so the last column is masked.
    let without_heartbeat = |csv: &str| -> String {
        csv.lines()
            .map(|l| l.rsplit_once(',').map_or(l, |(head, _)| head).to_owned() + "\n")
            .collect()
    };
    let csv = sh.ampctl(&["worker", "list", "--output", "csv"]);
    assert_eq!(csv.code, Some(0));
    assert_eq!(
        without_heartbeat(&csv.stdout),
        without_heartbeat(&ran["csv"]),
        "ampctl CSV is byte-identical to the guide's export"
    );
    assert_eq!(lines(&csv.stdout).len(), lines(&ran["csv"]).len());

    let health = sh.ampctl(&["worker", "check", "--stale-after", "30s"]);
    assert_eq!(health.code, Some(1));
    let health_lines = lines(&health.stdout);
    assert_eq!(health_lines.len(), 4, "{}", health.stdout);
    // worker-04's process is gone: a server that says so makes it `stopped` (a failure
    // until retired); Amp's cannot tell, and its old heartbeat makes it `stale`.
    let stale_re = Regex::new(match liveness {
        Liveness::Known => {
            r"^❌ worker-04: stopped, no process holds its node id \(last heartbeat \d+[smhd] ago\)$"
        }
        Liveness::Unknown => r"^❌ worker-04: stale, heartbeat \d+[smhd] ago \(threshold 30s\)$",
    })
    .unwrap();
    for (id, line) in order.iter().zip(&health_lines) {
        if *id == "worker-04" {
            assert!(stale_re.is_match(line), "{}", health.stdout);
        } else {
            assert!(
                line.starts_with(&format!("✓ {id}: healthy, heartbeat ")),
                "{}",
                health.stdout
            );
        }
    }
    // The guide's check-workers.sh with its jq made compact (-c) gives the same verdicts.
    let fixed = blocks[19].replace("jq -r '.workers[]'", "jq -c '.workers[]'");
    let fixed_run = sh.bash(&fixed, None);
    assert!(
        fixed_run.stdout.contains("❌ worker-04: heartbeat"),
        "{}",
        fixed_run.stdout
    );
    assert_eq!(
        fixed_run.stdout.matches("✓ ").count(),
        3,
        "{}",
        fixed_run.stdout
    );

    let deploy = sh.ampctl(&[
        "worker",
        "check",
        "--stale-after",
        "1h",
        "--expect-version",
        V22,
    ]);
    assert_eq!(deploy.code, Some(1));
    assert!(
        deploy.stdout.contains(&format!(
            "❌ worker-03: wrong version, {V21} (expected {V22})"
        )),
        "{}",
        deploy.stdout
    );
    // A stopped worker fails even where its heartbeat is within the threshold.
    let passing = match liveness {
        Liveness::Known => 2,
        Liveness::Unknown => 3,
    };
    assert_eq!(
        deploy.stdout.matches("✓ ").count(),
        passing,
        "{}",
        deploy.stdout
    );

    // `watch -n 5 'ampctl worker list'` → `ampctl worker list --watch`: redraws until stopped.
    let watch = sh.bash(
        &format!("{AMPCTL} worker list --watch --interval 500ms"),
        Some(2),
    );
    assert_eq!(watch.code, Some(124));
    assert!(
        watch
            .stdout
            .matches("Every 500ms: ampctl worker list")
            .count()
            >= 2,
        "{}",
        watch.stdout
    );
    assert!(watch.stdout.contains("worker-04"));
}
