//! An in-memory Kubernetes API server, kept ONLY where an injected fault is the point
//! (429/500/409 on chosen requests, failing watches, a CRD that is not installed, the
//! exact request sequence of one reconcile). Everything that needs real API-server
//! semantics (server-side apply, schema pruning, RBAC, watches, Leases) runs against a
//! real kube-apiserver: see [`super::envtest`]. It
//! records every request (method, path with query, JSON body), keeps AmpWorker and
//! AmpWorkerFleet objects so status patches and deletes answer like a real server, and
//! can inject faults (500, 409, 429, ...) for chosen requests.
//!
//! Tests drive it through tower-test's mock handle ([`FakeApiServer::handle`]),
//! benchmarks as a plain service ([`FakeApiServer::client`]), and tests of the real
//! `ampd operator` process over HTTP ([`FakeApiServer::serve_http`]), which adds what
//! a process needs: list + watch (long-polled), and Leases with server-side-apply
//! field ownership, so leader election behaves as on a real API server.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use http::{Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// Which listener the request came through ([`FakeApiServer::serve_http`]'s tag).
    pub client: String,
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
    /// Global resourceVersion; every write bumps it.
    rv: u64,
    /// (resourceVersion, plural, watch event type, object) for watches.
    log: std::collections::VecDeque<(u64, String, &'static str, Value)>,
    /// (lease name, spec field) → field manager that owns it.
    lease_owners: BTreeMap<(String, String), String>,
}

const LOG_CAP: usize = 200_000;

impl State {
    fn bump(&mut self, plural: &str, kind: &'static str, obj: &mut Value) {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.log
            .push_back((self.rv, plural.to_owned(), kind, obj.clone()));
        if self.log.len() > LOG_CAP {
            self.log.pop_front();
        }
    }
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
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
        if meta.get("creationTimestamp").is_none() {
            meta["creationTimestamp"] =
                json!(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        let name = v["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let existed = st.objects.contains_key(&(plural.to_owned(), name.clone()));
        st.bump(plural, if existed { "MODIFIED" } else { "ADDED" }, &mut v);
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

    /// The stored AmpWorkers as the operator's watch caches them.
    pub fn cached_workers(&self) -> Vec<std::sync::Arc<crate::operator::cache::CachedWorker>> {
        self.objects::<crate::operator::crd::AmpWorker>("ampworkers")
            .into_iter()
            .map(|w| std::sync::Arc::new(w.into()))
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
        let query = parts.uri.query().unwrap_or_default().to_owned();
        let header = |name| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let client = header("x-fake-client");
        let content_type = header(http::header::CONTENT_TYPE.as_str());
        let bytes = body.collect_bytes().await.unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let method = parts.method.as_str().to_owned();
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let is_watch =
            method == "GET" && matches!(query_param(&query, "watch"), Some("true" | "1"));
        {
            let mut st = self.lock();
            if !(st.writes_only && method == "GET") {
                st.requests.push(Recorded {
                    client,
                    method: method.clone(),
                    path: path.clone(),
                    body: body.clone(),
                });
            }
        }
        if let Some(fault) = self.take_fault(&method, &path) {
            return fault;
        }
        if is_watch {
            return self.watch(parts.uri.path(), &query).await;
        }
        let mut st = self.lock();
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
        if plural == "leases"
            && method == "PATCH"
            && let Some(n) = name
        {
            let manager = query_param(&query, "fieldManager").unwrap_or("unknown");
            let force = query_param(&query, "force") == Some("true");
            let apply = content_type.starts_with("application/apply-patch");
            return st.patch_lease(n, &body, manager, apply && !force);
        }
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
                    &json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
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
            ("PATCH", Some(n), Some("status")) => match st.objects.get(&key(n)).cloned() {
                Some(mut obj) => {
                    // Apply replaces the status we own; a merge patch changes only the
                    // fields it names (the operator's heartbeatAt refreshes).
                    if content_type.starts_with("application/merge-patch")
                        && let (Some(into), Some(from)) =
                            (obj["status"].as_object_mut(), body["status"].as_object())
                    {
                        for (k, v) in from {
                            into.insert(k.clone(), v.clone());
                        }
                    } else {
                        obj["status"] = body["status"].clone();
                    }
                    st.bump(plural, "MODIFIED", &mut obj);
                    st.objects.insert(key(n), obj.clone());
                    respond(200, &obj)
                }
                None => respond(404, &status_body(404, "NotFound", "not found")),
            },
            ("DELETE", Some(n), None) => match st.objects.remove(&key(n)) {
                Some(mut obj) => {
                    st.bump(plural, "DELETED", &mut obj);
                    respond(200, &obj)
                }
                None => respond(404, &status_body(404, "NotFound", "not found")),
            },
            _ => respond(
                405,
                &status_body(405, "MethodNotAllowed", "not supported by the fake"),
            ),
        }
    }

    fn take_fault(&self, method: &str, path: &str) -> Option<Response<Body>> {
        let mut st = self.lock();
        let f = st
            .faults
            .iter_mut()
            .find(|f| f.remaining > 0 && f.method == method && path.contains(&f.path_contains))?;
        f.remaining -= 1;
        let code = f.status;
        let reason = match code {
            409 => "Conflict",
            429 => "TooManyRequests",
            404 => "NotFound",
            _ => "InternalError",
        };
        Some(respond(code, &status_body(code, reason, "injected fault")))
    }

    /// Long-polls up to one second for changes after the requested resourceVersion and
    /// returns them as a watch stream (newline-delimited JSON), then ends; the client
    /// resumes from the last resourceVersion it saw.
    async fn watch(&self, path: &str, query: &str) -> Response<Body> {
        let plural = path.rsplit('/').next().unwrap_or_default().to_owned();
        let since: u64 = query_param(query, "resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        for _ in 0..10 {
            let lines: Vec<u8> = {
                let st = self.lock();
                if st.missing.contains(&plural) {
                    return respond(404, &status_body(404, "NotFound", "no such resource"));
                }
                let mut out = Vec::new();
                for (_, _, kind, obj) in st
                    .log
                    .iter()
                    .filter(|(rv, p, _, _)| *rv > since && *p == plural)
                {
                    out.extend(
                        serde_json::to_vec(&json!({"type": kind, "object": obj}))
                            .unwrap_or_default(),
                    );
                    out.push(b'\n');
                }
                out
            };
            if !lines.is_empty() {
                return Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "application/json")
                    .body(Body::from(lines))
                    .unwrap_or_else(|_| Response::new(Body::from(Vec::new())));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(Body::from(Vec::new()))
            .unwrap_or_else(|_| Response::new(Body::from(Vec::new())))
    }

    /// Serves the fake over HTTP on a free loopback port; requests are recorded with
    /// `tag` as their client (one listener per process under test).
    pub async fn serve_http(
        &self,
        tag: &str,
    ) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let me = self.clone();
        let tag = http::HeaderValue::from_str(tag).unwrap_or(http::HeaderValue::from_static("?"));
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let me = me.clone();
            let tag = tag.clone();
            async move {
                let (mut parts, body) = req.into_parts();
                parts.headers.insert("x-fake-client", tag);
                let bytes = axum::body::to_bytes(body, 64 << 20)
                    .await
                    .unwrap_or_default();
                let req = Request::from_parts(parts, Body::from(bytes.to_vec()));
                me.handle(req).await.map(axum::body::Body::new)
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok((addr, task))
    }

    /// A kubeconfig file pointing at `addr` (plain HTTP, namespace `namespace`).
    pub fn kubeconfig(addr: std::net::SocketAddr, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\nusers:\n- name: fake\n  user:\n    token: fake\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {namespace}\ncurrent-context: fake\n"
        )
    }
}

impl State {
    /// Lease patches with server-side-apply ownership of `spec` fields: a non-forced
    /// apply that changes a field another manager owns is a 409 conflict, which is what
    /// keeps two replicas from both taking the lease.
    fn patch_lease(
        &mut self,
        name: &str,
        body: &Value,
        manager: &str,
        apply_checked: bool,
    ) -> Response<Body> {
        let key = ("leases".to_owned(), name.to_owned());
        let Some(mut obj) = self.objects.get(&key).cloned() else {
            return respond(404, &status_body(404, "NotFound", "lease not found"));
        };
        let Some(fields) = body["spec"].as_object() else {
            return respond(200, &obj);
        };
        if apply_checked {
            for (field, value) in fields {
                let owner = self.lease_owners.get(&(name.to_owned(), field.clone()));
                let current = &obj["spec"][field];
                if owner.is_some_and(|o| o != manager) && !current.is_null() && current != value {
                    return respond(
                        409,
                        &status_body(
                            409,
                            "Conflict",
                            &format!(
                                "Apply failed with 1 conflict: conflict with \"{}\": .spec.{field}",
                                owner.cloned().unwrap_or_default()
                            ),
                        ),
                    );
                }
            }
        }
        if !obj["spec"].is_object() {
            obj["spec"] = json!({});
        }
        for (field, value) in fields {
            if value.is_null() {
                if let Some(spec) = obj["spec"].as_object_mut() {
                    spec.remove(field);
                }
                self.lease_owners.remove(&(name.to_owned(), field.clone()));
            } else {
                obj["spec"][field] = value.clone();
                self.lease_owners
                    .insert((name.to_owned(), field.clone()), manager.to_owned());
            }
        }
        self.bump("leases", "MODIFIED", &mut obj);
        self.objects.insert(key, obj.clone());
        respond(200, &obj)
    }
}
