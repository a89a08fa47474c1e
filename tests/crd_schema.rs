//! The generated CRDs (what `crds/` and the chart hold): validation a user relies on.

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
            col("Restarts", "integer", ".status.restartCount", 0),
            col("Last Heartbeat", "date", ".status.heartbeatAt", 0),
            col("Age", "date", ".metadata.creationTimestamp", 0),
            col("Commit", "string", ".status.info.commitSha", 1),
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
