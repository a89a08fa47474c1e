//! An in-memory Kubernetes API server for the operator's tests and benchmarks: it
//! records every request (method, path with query, JSON body), keeps AmpWorker and
//! AmpWorkerFleet objects so status patches and deletes answer like a real server, and
//! can inject faults (500, 409, 429, ...) for chosen requests.
//!
//! Tests drive it through tower-test's mock handle ([`FakeApiServer::handle`]);
//! benchmarks use it as a plain service ([`FakeApiServer::client`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use http::{Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub method: String,
    /// Path and query, e.g. `/apis/amp.io/v1alpha1/namespaces/ns/ampworkers/w/status?...`.
    pub path: String,
    pub body: Value,
}

#[derive(Debug, Clone)]
struct Fault {
    method: String,
    path_contains: String,
    status: u16,
    remaining: usize,
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    faults: Vec<Fault>,
    /// (plural, name) → object
    objects: BTreeMap<(String, String), Value>,
    /// Plurals whose CRD is "not installed" (every request 404s).
    missing: Vec<String>,
    next_uid: u64,
    /// Record only writes (GETs/lists are still answered).
    writes_only: bool,
}

#[derive(Clone, Default)]
pub struct FakeApiServer {
    state: Arc<Mutex<State>>,
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Status", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    })
}

fn respond(code: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap_or_default()))
        .unwrap_or_else(|_| Response::new(Body::from(Vec::new())))
}

impl FakeApiServer {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record only non-GET requests (benchmarks keep memory flat).
    pub fn record_writes_only(&self) {
        self.lock().writes_only = true;
    }

    /// A kube client whose requests this fake answers directly.
    pub fn client(&self, namespace: &str) -> kube::Client {
        let me = self.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let me = me.clone();
            async move { Ok::<_, std::convert::Infallible>(me.handle(req).await) }
        });
        kube::Client::new(service, namespace)
    }

    /// Puts an object into the fake (what a user or an earlier create made). Returns
    /// it with the uid, generation and resourceVersion the fake gave it.
    pub fn insert<K: serde::Serialize>(&self, plural: &str, obj: &K) -> Value {
        let mut v = serde_json::to_value(obj).unwrap_or(Value::Null);
        let mut st = self.lock();
        st.next_uid += 1;
        let uid = format!("uid-{}", st.next_uid);
        let meta = &mut v["metadata"];
        if meta.get("uid").is_none() {
            meta["uid"] = json!(uid);
        }
        if meta.get("generation").is_none() {
            meta["generation"] = json!(1);
        }
        meta["resourceVersion"] = json!("1");
        if meta.get("creationTimestamp").is_none() {
            meta["creationTimestamp"] =
                json!(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        let name = v["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        st.objects.insert((plural.to_owned(), name), v.clone());
        v
    }

    pub fn get(&self, plural: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&(plural.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Every stored object of a kind, deserialized.
    pub fn objects<K: serde::de::DeserializeOwned>(&self, plural: &str) -> Vec<K> {
        self.lock()
            .objects
            .iter()
            .filter(|((p, _), _)| p == plural)
            .filter_map(|(_, v)| serde_json::from_value(v.clone()).ok())
            .collect()
    }

    /// Makes every request for `plural` answer 404, as when its CRD is not installed.
    pub fn crd_missing(&self, plural: &str) {
        self.lock().missing.push(plural.to_owned());
    }

    /// The next `times` requests with this method whose path contains `path_contains`
    /// answer `status`.
    pub fn fail(&self, method: &str, path_contains: &str, status: u16, times: usize) {
        self.lock().faults.push(Fault {
            method: method.to_owned(),
            path_contains: path_contains.to_owned(),
            status,
            remaining: times,
        });
    }

    /// Takes the requests recorded so far.
    pub fn take_requests(&self) -> Vec<Recorded> {
        std::mem::take(&mut self.lock().requests)
    }

    /// Answers one request (tests feed it from tower-test's mock handle: the kube-rs
    /// `ApiServerVerifier` pattern, with the verifier's answers in one place).
    pub async fn handle(&self, req: Request<Body>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let bytes = body.collect_bytes().await.unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let method = parts.method.as_str().to_owned();
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let mut st = self.lock();
        if !(st.writes_only && method == "GET") {
            st.requests.push(Recorded {
                method: method.clone(),
                path: path.clone(),
                body: body.clone(),
            });
        }
        if let Some(f) = st
            .faults
            .iter_mut()
            .find(|f| f.remaining > 0 && f.method == method && path.contains(&f.path_contains))
        {
            f.remaining -= 1;
            let code = f.status;
            let reason = match code {
                409 => "Conflict",
                429 => "TooManyRequests",
                404 => "NotFound",
                _ => "InternalError",
            };
            return respond(code, &status_body(code, reason, "injected fault"));
        }
        let route = parts.uri.path().trim_start_matches('/').to_owned();
        let segs: Vec<&str> = route.split('/').collect();
        // apis/<group>/<version>/namespaces/<ns>/<plural>[/<name>[/status]]
        let (plural, name, sub) = match segs.as_slice() {
            ["apis", _, _, "namespaces", _, plural] => (*plural, None, None),
            ["apis", _, _, "namespaces", _, plural, name] => (*plural, Some(*name), None),
            ["apis", _, _, "namespaces", _, plural, name, sub] => {
                (*plural, Some(*name), Some(*sub))
            }
            _ => return respond(404, &status_body(404, "NotFound", "unknown path")),
        };
        if st.missing.iter().any(|m| m == plural) {
            return respond(
                404,
                &status_body(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ),
            );
        }
        if plural == "events" {
            return respond(if method == "POST" { 201 } else { 200 }, &body);
        }
        let key = |n: &str| (plural.to_owned(), n.to_owned());
        match (method.as_str(), name, sub) {
            ("GET", None, None) => {
                let items: Vec<Value> = st
                    .objects
                    .iter()
                    .filter(|((p, _), _)| p == plural)
                    .map(|(_, v)| v.clone())
                    .collect();
                respond(
                    200,
                    &json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}),
                )
            }
            ("GET", Some(n), _) => match st.objects.get(&key(n)) {
                Some(v) => respond(200, v),
                None => respond(404, &status_body(404, "NotFound", "not found")),
            },
            ("POST", None, None) => {
                let n = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if st.objects.contains_key(&key(&n)) {
                    return respond(409, &status_body(409, "AlreadyExists", "already exists"));
                }
                drop(st);
                let stored = self.insert(plural, &body);
                respond(201, &stored)
            }
            ("PATCH", Some(n), Some("status")) => match st.objects.get_mut(&key(n)) {
                Some(obj) => {
                    obj["status"] = body["status"].clone();
                    respond(200, obj)
                }
                None => respond(404, &status_body(404, "NotFound", "not found")),
            },
            ("DELETE", Some(n), None) => match st.objects.remove(&key(n)) {
                Some(obj) => respond(200, &obj),
                None => respond(404, &status_body(404, "NotFound", "not found")),
            },
            _ => respond(
                405,
                &status_body(405, "MethodNotAllowed", "not supported by the fake"),
            ),
        }
    }
}
