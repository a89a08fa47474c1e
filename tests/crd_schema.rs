//! The generated CRDs (what `crds/` and the chart hold): validation a user relies on.

use amp_operator::operator::conditions::Reason;
use amp_operator::operator::crdgen::crds;
use serde_json::{Value, json};

fn crd(kind: &str) -> Value {
    let crd = crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"));
    serde_json::to_value(crd).unwrap()
}

fn columns(crd: &Value) -> Vec<(String, String, String, i64)> {
    crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["type"].as_str().unwrap().to_owned(),
                c["jsonPath"].as_str().unwrap().to_owned(),
                c["priority"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

/// The Ready condition's reason: the REASON column of `-o wide` on both kinds.
const READY_REASON: &str = r#".status.conditions[?(@.type=="Ready")].reason"#;

fn col(name: &str, ty: &str, path: &str, priority: i64) -> (String, String, String, i64) {
    (name.into(), ty.into(), path.into(), priority)
}

#[test]
fn ampworker_identity_scope_and_names() {
    let c = crd("AmpWorker");
    assert_eq!(c["metadata"]["name"], "ampworkers.amp.io");
    assert_eq!(c["spec"]["group"], "amp.io");
    assert_eq!(c["spec"]["scope"], "Namespaced");
    assert_eq!(c["spec"]["names"]["shortNames"], json!(["aw"]));
    assert_eq!(c["spec"]["names"]["categories"], json!(["amp"]));
    let v = &c["spec"]["versions"][0];
    assert_eq!(v["name"], "v1alpha1");
    assert_eq!(v["subresources"]["status"], json!({}));
}

#[test]
fn node_id_has_the_pattern_bounds_and_the_immutability_rule() {
    let c = crd("AmpWorker");
    let spec = &c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["required"], json!(["nodeId"]));
    let node_id = &spec["properties"]["nodeId"];
    // Amp's rule, not ours: the operator mirrors whatever node ids Amp's workers wrote.
    assert_eq!(node_id["pattern"], amp_operator::node_id::AMP_PATTERN);
    assert_eq!(node_id["minLength"], 1);
    assert_eq!(node_id.get("maxLength"), None, "Amp sets no length limit");
    let pattern = regex::Regex::new(node_id["pattern"].as_str().unwrap()).unwrap();
    let long = "a".repeat(200);
    for id in [
        "worker-01",
        "ünicode-wörker",
        "日本語",
        "Ωmega_1.2",
        &long,
        "1w",
        "-w",
        "w x",
        "w/1",
        "",
    ] {
        assert_eq!(
            pattern.is_match(id),
            amp_operator::node_id::AmpNodeId::parse(id).is_ok(),
            "the CRD pattern and AmpNodeId disagree on {id:?}"
        );
    }
    assert_eq!(
        node_id["x-kubernetes-validations"],
        json!([{"rule": "self == oldSelf", "message": "nodeId is immutable"}])
    );
    let timeout = &spec["properties"]["heartbeatTimeoutSeconds"];
    assert_eq!(
        (timeout["minimum"].as_f64(), timeout["maximum"].as_f64()),
        (Some(1.0), Some(3600.0))
    );
}

/// The operator applies each status whole; atomic, it is one `managedFields` entry and
/// an apply replaces it whole (see envtest_operator.rs for an object written before).
#[test]
fn statuses_are_atomic_for_server_side_apply() {
    for kind in ["AmpWorker", "AmpWorkerFleet"] {
        let c = crd(kind);
        let status = &c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
        assert_eq!(status["x-kubernetes-map-type"], "atomic", "{kind}");
    }
}

#[test]
fn conditions_are_a_list_map_keyed_by_type() {
    for kind in ["AmpWorker", "AmpWorkerFleet"] {
        let c = crd(kind);
        let conditions = &c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
            ["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map", "{kind}");
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            json!(["type"]),
            "{kind}"
        );
        let item = &conditions["items"];
        let mut required: Vec<&str> = item["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        required.sort();
        assert_eq!(
            required,
            ["lastTransitionTime", "message", "reason", "status", "type"],
            "{kind}: metav1.Condition"
        );
    }
}

#[test]
fn ampworker_printer_columns_read_like_kubectl_get_nodes() {
    assert_eq!(
        columns(&crd("AmpWorker")),
        vec![
            col("Node ID", "string", ".spec.nodeId", 0),
            col("Status", "string", ".status.state", 0),
            col("Version", "string", ".status.info.version", 0),
            col("Jobs", "integer", ".status.jobs.active", 0),
            col("Restarts", "integer", ".status.restartCount", 0),
            col("Last Heartbeat", "date", ".status.heartbeatAt", 0),
            col("Age", "date", ".metadata.creationTimestamp", 0),
            col("Expected", "string", ".status.expectedVersion", 1),
            col("Reason", "string", READY_REASON, 1),
            col("Commit", "string", ".status.shortCommit", 1),
            col("Pod", "string", ".status.placement.pod", 1),
            col("Node", "string", ".status.placement.node", 1),
        ]
    );
    // `kubectl get aw --field-selector spec.nodeId=GPU_Worker.A1`.
    assert_eq!(
        crd("AmpWorker")["spec"]["versions"][0]["selectableFields"],
        json!([{"jsonPath": ".spec.nodeId"}])
    );
}

#[test]
fn fleet_printer_columns_and_short_name() {
    let c = crd("AmpWorkerFleet");
    assert_eq!(c["spec"]["names"]["shortNames"], json!(["awf"]));
    assert_eq!(
        columns(&c),
        vec![
            col("Version", "string", ".spec.version", 0),
            col("Ready", "string", ".status.readySummary", 0),
            col("Updated", "integer", ".status.updatedWorkers", 0),
            col("Status", "string", ".status.state", 0),
            col("Age", "date", ".metadata.creationTimestamp", 0),
            col("Reason", "string", READY_REASON, 1),
        ]
    );
    let spec = &c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["required"], json!(["version"]));
    assert_eq!(spec["properties"]["version"]["minLength"], 1);
}

#[test]
fn checked_in_crds_are_what_the_code_generates() {
    for c in crds() {
        let name = c.metadata.name.clone().unwrap();
        let path = format!("{}/crds/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            on_disk,
            serde_saphyr::to_string(&c).unwrap(),
            "{path} is stale: run `ampd crdgen --out-dir crds`"
        );
    }
}

fn schema(crd: &Value) -> &Value {
    &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
}

/// JSON paths (`.status.info.version`, `.status.conditions[].reason`) of every field
/// under `node` whose description is missing or blank. Items of an array and values of a
/// map are fields of their own only when they are objects: `kubectl explain` shows a
/// list of strings with the list's description.
fn undescribed(node: &Value, path: &str, out: &mut Vec<String>) {
    let described = node["description"]
        .as_str()
        .is_some_and(|d| !d.trim().is_empty());
    if !described {
        out.push(if path.is_empty() {
            ".".into()
        } else {
            path.into()
        });
    }
    if let Some(props) = node["properties"].as_object() {
        for (name, child) in props {
            undescribed(child, &format!("{path}.{name}"), out);
        }
    }
    for (key, suffix) in [("items", "[]"), ("additionalProperties", ".*")] {
        let inner = &node[key];
        if inner["type"] == "object" {
            undescribed(inner, &format!("{path}{suffix}"), out);
        }
    }
}

/// `kubectl explain` prints `<no description>` for none of the fields, at any depth
/// (metav1.Condition and LabelSelector bring Kubernetes' own descriptions).
#[test]
fn every_schema_field_has_a_description() {
    for kind in ["AmpWorker", "AmpWorkerFleet"] {
        let c = crd(kind);
        let mut missing = Vec::new();
        undescribed(schema(&c), "", &mut missing);
        assert!(
            missing.is_empty(),
            "{kind}: fields without a description (add a doc comment in src/operator/crd.rs): {missing:?}"
        );
    }
}

/// The proof that `undescribed` can fail: it names the path of a field without one.
#[test]
fn the_description_walk_names_undescribed_paths() {
    let schema = json!({"description": "root", "properties": {
        "status": {"description": "s", "properties": {
            "info": {"properties": {"version": {"description": " "}}},
            "conditions": {"description": "c", "items": {"type": "object", "properties": {"reason": {}}}},
            "mismatched": {"description": "m", "items": {"type": "string"}}
        }}
    }});
    let mut missing = Vec::new();
    undescribed(&schema, "", &mut missing);
    missing.sort();
    assert_eq!(
        missing,
        [
            ".status.conditions[]",
            ".status.conditions[].reason",
            ".status.info",
            ".status.info.version"
        ]
    );
}

/// Descriptions speak to users, not to whoever runs the operator: no `--flag`.
#[test]
fn descriptions_name_no_operator_flags() {
    let flag = regex::Regex::new(r"--[a-z]").unwrap();
    for kind in ["AmpWorker", "AmpWorkerFleet"] {
        let text = serde_json::to_string(schema(&crd(kind))).unwrap();
        let found: Vec<&str> = flag.find_iter(&text).map(|m| m.as_str()).collect();
        assert!(found.is_empty(), "{kind}: flag jargon {found:?}");
    }
}

fn conditions_description(kind: &str) -> String {
    schema(&crd(kind))["properties"]["status"]["properties"]["conditions"]["description"]
        .as_str()
        .unwrap_or_else(|| panic!("{kind}: status.conditions has no description"))
        .to_owned()
}

/// (type, status, reason) for each `- Status Reason[, Reason … or Reason]: meaning` line,
/// under the `Type: …` line that starts its paragraph.
fn documented_reasons(description: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for paragraph in description.split("\n\n").skip(1) {
        let mut lines = paragraph.lines();
        let heading = lines.next().unwrap_or_default();
        let type_ = heading.split(':').next().unwrap_or_default();
        for line in lines {
            let item = line
                .strip_prefix("- ")
                .unwrap_or_else(|| panic!("not a `- Status Reason: meaning` line: {line:?}"));
            let (head, meaning) = item
                .split_once(": ")
                .unwrap_or_else(|| panic!("no `: meaning` in {line:?}"));
            assert!(!meaning.trim().is_empty(), "{line:?} says nothing");
            let (status, reasons) = head.split_once(' ').unwrap();
            for reason in reasons.replace(" or ", ", ").split(", ") {
                out.push((type_.to_owned(), status.to_owned(), reason.to_owned()));
            }
        }
    }
    out.sort();
    out
}

fn triples(rows: &[(&str, &str, &[&str])]) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = rows
        .iter()
        .flat_map(|(t, s, reasons)| {
            reasons
                .iter()
                .map(move |r| (t.to_string(), s.to_string(), r.to_string()))
        })
        .collect();
    out.sort();
    out
}

/// Every status and reason `kubectl explain ampworker.status.conditions` lists, exactly
/// what src/operator/status.rs sets (and docs/operator.md's table says).
#[test]
fn ampworker_conditions_list_every_type_status_and_reason() {
    let listed = documented_reasons(&conditions_description("AmpWorker"));
    let expected = triples(&[
        ("Registered", "True", &["WorkerRegistered"]),
        ("Registered", "False", &["NotRegistered"]),
        ("Registered", "Unknown", &["MetadataDbUnavailable"]),
        ("Healthy", "True", &["HeartbeatFresh"]),
        (
            "Healthy",
            "False",
            &["HeartbeatStale", "WorkerStopped", "NotRegistered"],
        ),
        ("Healthy", "Unknown", &["MetadataDbUnavailable"]),
        ("VersionMatched", "True", &["VersionMatches"]),
        ("VersionMatched", "False", &["VersionMismatch"]),
        (
            "VersionMatched",
            "Unknown",
            &["NoExpectedVersion", "NotRegistered"],
        ),
        ("Ready", "True", &["WorkerReady"]),
        (
            "Ready",
            "False",
            &[
                "NotRegistered",
                "HeartbeatStale",
                "WorkerStopped",
                "VersionMismatch",
            ],
        ),
        ("Ready", "False", &["JobNotPickedUp"]),
        ("Ready", "Unknown", &["MetadataDbUnavailable"]),
        ("AcceptingJobs", "True", &["JobsPickedUp"]),
        ("AcceptingJobs", "False", &["JobNotPickedUp"]),
        (
            "AcceptingJobs",
            "Unknown",
            &["JobsUnknown", "MetadataDbUnavailable"],
        ),
        ("JobsStranded", "True", &["JobsStranded"]),
        ("JobsStranded", "False", &["NoStrandedJobs"]),
        (
            "JobsStranded",
            "Unknown",
            &["JobsUnknown", "MetadataDbUnavailable"],
        ),
    ]);
    assert_eq!(listed, expected);
}

/// The same for `kubectl explain ampworkerfleet.status.conditions` (src/operator/fleet_status.rs).
#[test]
fn fleet_conditions_list_every_type_status_and_reason() {
    let listed = documented_reasons(&conditions_description("AmpWorkerFleet"));
    let stalled: &[&str] = &[
        "VersionMismatch",
        "WorkersCrashing",
        "ProgressDeadlineExceeded",
        "InvalidSelector",
    ];
    let expected = triples(&[
        ("Ready", "True", &["RolloutComplete"]),
        (
            "Ready",
            "False",
            &[
                "RolloutInProgress",
                "WorkersUnavailable",
                "WaitingForWorkers",
            ],
        ),
        ("Ready", "False", stalled),
        ("Ready", "Unknown", &["MetadataDbUnavailable"]),
        (
            "Reconciling",
            "True",
            &[
                "RolloutInProgress",
                "WorkersUnavailable",
                "WorkersCrashing",
                "WaitingForWorkers",
                "MetadataDbUnavailable",
            ],
        ),
        ("Reconciling", "False", &["RolloutComplete"]),
        ("Reconciling", "False", stalled),
        ("Stalled", "True", stalled),
        (
            "Stalled",
            "False",
            &["Progressing", "RolloutComplete", "MetadataDbUnavailable"],
        ),
        ("JobsStranded", "True", &["JobsStranded"]),
        ("JobsStranded", "False", &["NoStrandedJobs"]),
        (
            "JobsStranded",
            "Unknown",
            &["JobsUnknown", "MetadataDbUnavailable"],
        ),
    ]);
    assert_eq!(listed, expected);
}

/// A reason added to the vocabulary must be explained to `kubectl explain` users too.
#[test]
fn every_reason_the_operator_writes_is_explained() {
    let worker = documented_reasons(&conditions_description("AmpWorker"));
    let fleet = documented_reasons(&conditions_description("AmpWorkerFleet"));
    let unexplained: Vec<&str> = Reason::ALL
        .iter()
        .map(|r| r.as_str())
        .filter(|r| {
            !worker
                .iter()
                .chain(&fleet)
                .any(|(_, _, listed)| listed == r)
        })
        .collect();
    assert!(
        unexplained.is_empty(),
        "not in any conditions description: {unexplained:?}"
    );
}
