//! `ampd operator`: wiring of the DB pool, the Kubernetes client, the caches, leader
//! election, the probes and the poll loop.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::{StreamExt, TryStreamExt};
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::cache::CachedWorker;
use super::controller::{Reconciler, ReconcilerConfig};
use super::crd::{AmpWorker, AmpWorkerFleet};
use super::metrics::OperatorMetrics;
use super::mirror::{Mirror, Named};
use super::plan::PlanConfig;
use super::pods::WorkerPod;
use super::probes::{OperatorProbes, router};
use super::{OperatorArgs, OperatorError};
use crate::metadata_db;

pub async fn main(args: OperatorArgs, shutdown: CancellationToken) -> Result<(), OperatorError> {
    let config = controller_config(&args)?;
    // Lazy: an unreachable DB must not stop the operator (conditions go Unknown).
    let credentials = metadata_db::Credentials::from_args(&args.credentials);
    let pool =
        metadata_db::credentials::reader_pool(&credentials, "amp-operator", 2, args.db_timeout)?;
    let client = connect_to_cluster(&args.namespace).await?;
    let metrics = Arc::new(OperatorMetrics::new());
    let probes = serve_probes(args.listen, metrics.clone(), &shutdown).await?;
    let caches = Caches::start(&client, &args.namespace);
    let mut leadership = Leadership::start(&client, &args, &config.identity).await?;
    if !caches.synced(&shutdown).await? {
        return Ok(());
    }
    probes.ready.store(true, Ordering::Relaxed);
    log_pod_access(pod_access(&client, &args.namespace).await);
    let pod_cache = PodCache::new(client.clone(), &args.namespace);
    tracing::info!(
        namespace = %args.namespace,
        database = %credentials.describe(),
        identity = %config.identity,
        leader_election = args.leader_election,
        "operator started"
    );
    let controller = Reconciler::new(client, pool, config, metrics.clone())
        .with_db_timeout(args.db_timeout)
        .with_jobs_interval(args.jobs_interval);
    let mut lead = Lead {
        controller,
        caches,
        pod_cache,
        metrics,
        tick: poll_ticker(args.poll_interval),
        was_leader: false,
    };
    lead.poll_until(&shutdown, &mut leadership).await?;
    leadership.release().await;
    tracing::info!("operator stopped");
    Ok(())
}

/// The client from KUBECONFIG or the in-cluster config, once the namespace and the
/// CRDs are known to be there (errors name the server).
async fn connect_to_cluster(namespace: &str) -> Result<Client, OperatorError> {
    let (client, server) = kube_client().await?;
    check_namespace(&client, namespace)
        .await
        .map_err(|e| e.at(&server))?;
    check_crds(&client, namespace)
        .await
        .map_err(|e| e.at(&server))?;
    Ok(client)
}

/// Serves `/healthz`, `/readyz` and `/metrics` until shutdown; not ready until the
/// caches are synced.
async fn serve_probes(
    listen: std::net::SocketAddr,
    metrics: Arc<OperatorMetrics>,
    shutdown: &CancellationToken,
) -> Result<Arc<OperatorProbes>, OperatorError> {
    let probes = Arc::new(OperatorProbes {
        ready: false.into(),
        metrics,
    });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| OperatorError::Listen {
            addr: listen,
            source,
        })?;
    let app = router(probes.clone());
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ =
            crate::http_server::serve(listener, app, crate::http_server::Limits::default(), stop)
                .await;
    });
    Ok(probes)
}

/// The namespace's AmpWorkers and fleets, as the watches last showed them.
struct Caches {
    workers: Mirror<CachedWorker>,
    fleets: Mirror<AmpWorkerFleet>,
}

impl Caches {
    /// Starts watching both kinds (each watch retries with backoff on its own).
    fn start(client: &Client, namespace: &str) -> Self {
        Self {
            // Cache only what the planner reads (managedFields alone would dominate).
            workers: {
                let mut sharing = super::cache::WorkerSharing::default();
                watch_kept(
                    Api::namespaced(client.clone(), namespace),
                    "AmpWorker",
                    move |w| CachedWorker::keep(w, &mut sharing),
                )
            },
            fleets: watch_kept(
                Api::namespaced(client.clone(), namespace),
                "AmpWorkerFleet",
                |mut f: AmpWorkerFleet| {
                    super::cache::slim(&mut f);
                    f
                },
            ),
        }
    }

    /// Waits for both first lists: false when shutdown came first.
    async fn synced(&self, shutdown: &CancellationToken) -> Result<bool, OperatorError> {
        tokio::select! {
            _ = shutdown.cancelled() => Ok(false),
            synced = async { tokio::try_join!(self.workers.ready(), self.fleets.ready()) } => {
                match synced {
                    Ok(_) => Ok(true),
                    Err(closed) => Err(OperatorError::Kube(kube::Error::Service(closed.into()))),
                }
            }
        }
    }
}

/// A mirror of `api`'s objects, each turned by `keep` into what is cached, fed by its own
/// task.
fn watch_kept<K, C>(
    api: Api<K>,
    kind: &'static str,
    mut keep: impl FnMut(K) -> C + Send + 'static,
) -> Mirror<C>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + 'static,
    C: Named + Send + Sync + 'static,
{
    let (mirror, feed) = super::mirror::mirror();
    let fed = watcher(api, watcher::Config::default())
        .default_backoff()
        .map_ok(move |event| feed.apply(kept_event(event, &mut keep)));
    tokio::spawn(drain(fed, kind));
    mirror
}

/// A watch event with its object (if any) turned into what is cached.
fn kept_event<K, C>(event: watcher::Event<K>, keep: &mut impl FnMut(K) -> C) -> watcher::Event<C> {
    use watcher::Event;
    match event {
        Event::Apply(o) => Event::Apply(keep(o)),
        Event::Delete(o) => Event::Delete(keep(o)),
        Event::Init => Event::Init,
        Event::InitApply(o) => Event::InitApply(keep(o)),
        Event::InitDone => Event::InitDone,
    }
}

/// Whether this replica leads: a lease, or always when leader election is off.
struct Leadership {
    leader: watch::Receiver<bool>,
    lease_task: Option<tokio::task::JoinHandle<kube_lease_manager::Result<LeaseManager>>>,
    /// Keeps the sender of the no-election channel alive for the whole run, so
    /// `changed()` waits forever instead of failing.
    _always_leader: Option<watch::Sender<bool>>,
}

impl Leadership {
    async fn start(
        client: &Client,
        args: &OperatorArgs,
        identity: &str,
    ) -> Result<Self, OperatorError> {
        if !args.leader_election {
            let (tx, rx) = watch::channel(true);
            return Ok(Self {
                leader: rx,
                lease_task: None,
                _always_leader: Some(tx),
            });
        }
        // The lease keeps its per-identity field manager: server-side apply conflicts
        // between managers are what stop two replicas from taking the lease at once.
        let manager = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
            .with_namespace(&args.namespace)
            .with_identity(identity)
            .with_duration(args.lease_duration.as_secs().max(2))
            .with_grace((args.lease_duration.as_secs() / 3).max(1))
            .build()
            .await
            .map_err(|e| OperatorError::LeaderElection(e.to_string()))?;
        let (rx, task) = manager.watch().await;
        Ok(Self {
            leader: rx,
            lease_task: Some(task),
            _always_leader: None,
        })
    }

    /// Whether this replica leads now. A stopped lease manager can no longer tell us we
    /// lost the lease: an error then, rather than writing on stale leadership (the pod
    /// restarts and rejoins).
    fn is_leader(&self, lease_alive: bool) -> Result<bool, OperatorError> {
        if !lease_alive || self.lease_task.as_ref().is_some_and(|t| t.is_finished()) {
            return Err(OperatorError::LeaderElection(
                "the lease manager stopped".into(),
            ));
        }
        Ok(*self.leader.borrow())
    }

    /// Dropping the receiver makes the lease manager release the lease for a fast
    /// failover; waits for that briefly.
    async fn release(self) {
        drop(self.leader);
        if let Some(task) = self.lease_task {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        }
    }
}

/// Ticks every `--poll-interval`; a late cycle delays the next rather than bunching up.
fn poll_ticker(every: std::time::Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// What the poll loop drives: a cycle per tick while this replica leads.
struct Lead {
    controller: Reconciler,
    caches: Caches,
    pod_cache: PodCache,
    metrics: Arc<OperatorMetrics>,
    tick: tokio::time::Interval,
    was_leader: bool,
}

impl Lead {
    /// Runs a cycle per tick until shutdown; an error when the lease manager stopped.
    async fn poll_until(
        &mut self,
        shutdown: &CancellationToken,
        leadership: &mut Leadership,
    ) -> Result<(), OperatorError> {
        loop {
            // A lost (or won) lease wakes the loop at once, not on the next tick.
            let lease_alive = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = self.tick.tick() => true,
                changed = leadership.leader.changed() => changed.is_ok(),
            };
            let is_leader = leadership.is_leader(lease_alive)?;
            self.note_leadership(is_leader);
            if is_leader {
                self.cycle().await;
            }
        }
    }

    /// The gauge, and on a change of leadership a fresh start: what was remembered
    /// (and the last DB read's cause) is no longer this replica's.
    fn note_leadership(&mut self, is_leader: bool) {
        self.metrics.leader.set(i64::from(is_leader));
        if is_leader != self.was_leader {
            tracing::info!(leader = is_leader, "leadership changed");
            self.controller.forget();
            // A standby reads no DB: what the last read said is no longer this replica's.
            self.metrics.set_metadata_db_cause(None);
            self.was_leader = is_leader;
        }
    }

    /// One cycle over what the caches show now.
    async fn cycle(&mut self) {
        let fleets = self.caches.fleets.sync();
        let pods = self.pod_cache.pods(fleets).await;
        let workers = self.caches.workers.sync();
        let report = self.controller.cycle_with_pods(workers, fleets, pods).await;
        log_cycle(&report);
    }
}

/// What the operator may do with Pods, said in one line at start-up.
fn log_pod_access(access: PodAccess) {
    tracing::info!(
        read_pods = access.read,
        delete_pods = access.delete,
        "pod access: {} (a fleet's spec.podSelector needs list and watch, spec.remediation mode Restart needs delete)",
        match (access.read, access.delete) {
            (true, true) => "read and delete",
            (true, false) => "read only",
            (false, true) => "delete only (cannot read)",
            (false, false) => "none",
        }
    );
}

/// A cycle's counts as fields: INFO when it wrote or failed something, DEBUG otherwise
/// (a steady fleet's cycles are routine).
fn log_cycle(report: &super::controller::CycleReport) {
    macro_rules! cycle_event {
        ($level:expr) => {
            tracing::event!(
                $level,
                db_available = report.db_available,
                created = report.created,
                status_writes = report.status_writes,
                refreshes = report.refreshes,
                fleet_writes = report.fleet_writes,
                deleted = report.deleted,
                events = report.events,
                errors = report.errors,
                collisions = report.collisions,
                remediated = report.remediated,
                "cycle"
            )
        };
    }
    if report.wrote_anything() || report.errors > 0 {
        cycle_event!(tracing::Level::INFO);
    } else {
        cycle_event!(tracing::Level::DEBUG);
    }
}

fn controller_config(args: &OperatorArgs) -> Result<ReconcilerConfig, OperatorError> {
    if args.poll_interval.is_zero() {
        return Err(OperatorError::InvalidOption(
            "--poll-interval must be greater than 0".into(),
        ));
    }
    if !(args.status_refresh_budget.is_finite() && args.status_refresh_budget > 0.0) {
        return Err(OperatorError::InvalidOption(
            "--status-refresh-budget must be a number of writes per second greater than 0".into(),
        ));
    }
    let to_chrono = |d: std::time::Duration, flag: &str| {
        chrono::Duration::from_std(d)
            .map_err(|_| OperatorError::InvalidOption(format!("{flag} is too large")))
    };
    let identity = match args.identity.trim() {
        "" => super::default_identity(),
        id => id.to_owned(),
    };
    Ok(ReconcilerConfig {
        namespace: args.namespace.clone(),
        plan: PlanConfig {
            status_refresh: to_chrono(args.status_refresh, "--status-refresh")?,
            refresh_budget: args.status_refresh_budget,
            gc_after: if args.gc_after.is_zero() {
                None
            } else {
                Some(to_chrono(args.gc_after, "--gc-after")?)
            },
            gc_stopped_after: if args.gc_stopped_after.is_zero() {
                None
            } else {
                Some(to_chrono(args.gc_stopped_after, "--gc-stopped-after")?)
            },
            heartbeat_timeout_secs: args.heartbeat_timeout.as_secs() as i64,
        },
        write_concurrency: args.write_concurrency,
        identity,
    })
}

/// Fails fast with the fix when a CRD is missing; any other API error is reported as is.
/// The client from KUBECONFIG or the in-cluster config, and the server's URL for errors.
async fn kube_client() -> Result<(Client, String), OperatorError> {
    let config = kube::Config::infer()
        .await
        .map_err(|e| OperatorError::KubeConfig(e.to_string()))?;
    let server = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|e| OperatorError::KubeConfig(e.to_string()))?;
    Ok((client, server))
}

/// Refuses a namespace that does not exist (nothing could be written there). Reading a
/// Namespace needs a cluster-wide permission the chart's Role does not grant, so the
/// operator first asks whether it may (a SelfSubjectAccessReview, open to everyone):
/// without it the check is skipped rather than answered 403.
pub async fn check_namespace(client: &Client, namespace: &str) -> Result<(), OperatorError> {
    if !may_get_namespace(client, namespace).await {
        return Ok(());
    }
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    match namespaces.get_metadata(namespace).await {
        Ok(_) => Ok(()),
        // Only the API server's own answer for a missing namespace (not an unknown path).
        Err(kube::Error::Api(e))
            if e.code == 404 && e.message == format!("namespaces \"{namespace}\" not found") =>
        {
            Err(OperatorError::NamespaceMissing(namespace.to_owned()))
        }
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 403 => Ok(()),
        Err(e) => Err(OperatorError::Kube(e)),
    }
}

async fn may_get_namespace(client: &Client, namespace: &str) -> bool {
    use k8s_openapi::api::authorization::v1::ResourceAttributes;
    may(
        client,
        ResourceAttributes {
            verb: Some("get".into()),
            resource: Some("namespaces".into()),
            name: Some(namespace.to_owned()),
            ..Default::default()
        },
    )
    .await
}

/// What the operator may do with Pods in its namespace, said in one line at start-up
/// (a fleet's podSelector needs list/watch, remediation needs delete).
pub async fn pod_access(client: &Client, namespace: &str) -> PodAccess {
    use k8s_openapi::api::authorization::v1::ResourceAttributes;
    let on_pods = |verb: &str| ResourceAttributes {
        verb: Some(verb.into()),
        resource: Some("pods".into()),
        namespace: Some(namespace.to_owned()),
        ..Default::default()
    };
    PodAccess {
        read: may(client, on_pods("list")).await && may(client, on_pods("watch")).await,
        delete: may(client, on_pods("delete")).await,
    }
}

/// The answer of [`pod_access`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodAccess {
    pub read: bool,
    pub delete: bool,
}

/// Whether this identity may do what `attributes` say (a SelfSubjectAccessReview, open
/// to everyone); false when the review itself fails.
async fn may(
    client: &Client,
    attributes: k8s_openapi::api::authorization::v1::ResourceAttributes,
) -> bool {
    use k8s_openapi::api::authorization::v1::{
        SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(attributes),
            ..Default::default()
        },
        ..Default::default()
    };
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    match reviews
        .create(&kube::api::PostParams::default(), &review)
        .await
    {
        Ok(answer) => answer.status.is_some_and(|s| s.allowed),
        Err(_) => false,
    }
}

pub async fn check_crds(client: &Client, namespace: &str) -> Result<(), OperatorError> {
    let params = ListParams::default().limit(1);
    let workers: Api<AmpWorker> = Api::namespaced(client.clone(), namespace);
    match workers.list_metadata(&params).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {
            return Err(OperatorError::CrdMissing { kind: "AmpWorker" });
        }
        Err(e) => return Err(OperatorError::Kube(e)),
    }
    let fleets: Api<AmpWorkerFleet> = Api::namespaced(client.clone(), namespace);
    match fleets.list_metadata(&params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Err(OperatorError::CrdMissing {
            kind: "AmpWorkerFleet",
        }),
        Err(e) => Err(OperatorError::Kube(e)),
    }
}

/// The namespace's Pods, watched from the first cycle in which a fleet sets a
/// podSelector (an operator without such fleets reads no Pods and needs no access).
struct PodCache {
    client: Client,
    namespace: String,
    mirror: Option<Mirror<WorkerPod>>,
}

impl PodCache {
    fn new(client: Client, namespace: &str) -> Self {
        Self {
            client,
            namespace: namespace.to_owned(),
            mirror: None,
        }
    }

    /// The cached Pods; empty while no fleet selects Pods or the first list has not
    /// arrived (then no placement comes from Pods and no Pod is restarted).
    async fn pods(&mut self, fleets: &[Arc<AmpWorkerFleet>]) -> &[Arc<WorkerPod>] {
        if self.mirror.is_none() && !fleets.iter().any(|f| f.spec.pod_selector.is_some()) {
            return &[];
        }
        if self.mirror.is_none() {
            let mirror = self.start();
            // The first list, briefly: placements should not flap at start-up.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), mirror.ready()).await;
            self.mirror = Some(mirror);
        }
        self.mirror.as_mut().map_or(&[], Mirror::sync)
    }

    fn start(&self) -> Mirror<WorkerPod> {
        let api: Api<super::pods::WatchedPod> =
            Api::namespaced(self.client.clone(), &self.namespace);
        tracing::info!(namespace = %self.namespace, "a fleet selects Pods: watching Pods");
        // 10,000 Pods: decoded into a type of our own (name, labels, owner, node, IP).
        let mut sharing = super::pods::PodSharing::default();
        watch_kept(api, "Pod", move |p| WorkerPod::keep(p, &mut sharing))
    }
}

async fn drain<S, K>(stream: S, kind: &'static str)
where
    S: futures::Stream<Item = Result<K, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    let mut outage = WatchOutage::default();
    while let Some(item) = stream.next().await {
        match item {
            Ok(_) => outage.recovered(kind),
            Err(err) => outage.failed(kind, &err),
        }
    }
}

/// One WARN per API-server outage, not one per retry; the routine relist after an
/// expired resource version (410 Gone) is DEBUG.
#[derive(Default)]
struct WatchOutage {
    failing: bool,
}

impl WatchOutage {
    fn failed(&mut self, kind: &'static str, err: &watcher::Error) {
        let message = watch_error_message(err);
        if is_expired_version(err) {
            tracing::debug!(kind, error = %message, "watch resource version expired; relisting");
            return;
        }
        if std::mem::replace(&mut self.failing, true) {
            tracing::debug!(kind, error = %message, "watch still failing; retrying with backoff");
        } else {
            tracing::warn!(kind, error = %message, "watch failed; retrying with backoff");
        }
    }

    fn recovered(&mut self, kind: &'static str) {
        if std::mem::take(&mut self.failing) {
            tracing::info!(kind, "watch resumed");
        }
    }
}

fn is_expired_version(err: &watcher::Error) -> bool {
    matches!(err, watcher::Error::WatchError(status) if status.code == 410)
}

/// The API server's message, not a Debug dump of its Status.
fn watch_error_message(err: &watcher::Error) -> String {
    match err {
        watcher::Error::WatchError(status) => {
            format!("{} ({})", status.message, status.code)
        }
        watcher::Error::InitialListFailed(e) => {
            format!("initial list: {}", super::kube_message(e))
        }
        watcher::Error::WatchStartFailed(e) => {
            format!("starting the watch: {}", super::kube_message(e))
        }
        watcher::Error::WatchFailed(e) => format!("watch stream: {}", super::kube_message(e)),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn watch_error(code: u16, message: &str) -> watcher::Error {
        watcher::Error::WatchError(Box::new(
            Status::failure(message, "Expired").with_code(code),
        ))
    }

    #[test]
    fn an_expired_resource_version_is_routine_and_says_the_servers_message() {
        let expired = watch_error(410, "too old resource version: 1 (2)");
        assert!(is_expired_version(&expired));
        assert_eq!(
            watch_error_message(&expired),
            "too old resource version: 1 (2) (410)"
        );
        assert!(!is_expired_version(&watch_error(500, "boom")));
    }

    #[test]
    fn this_replica_leads_as_the_channel_says_until_the_lease_manager_stops() {
        let (tx, rx) = watch::channel(true);
        let leadership = Leadership {
            leader: rx,
            lease_task: None,
            _always_leader: Some(tx),
        };
        assert!(matches!(leadership.is_leader(true), Ok(true)));
        let sender = leadership._always_leader.as_ref().expect("sender");
        sender.send(false).expect("receiver alive");
        assert!(matches!(leadership.is_leader(true), Ok(false)));
        // A closed channel is a stopped lease manager: stop rather than write on.
        assert_eq!(
            leadership.is_leader(false).unwrap_err().to_string(),
            "leader election failed: the lease manager stopped"
        );
    }

    #[test]
    fn an_outage_is_one_failure_until_an_object_arrives() {
        let mut outage = WatchOutage::default();
        outage.failed("AmpWorker", &watch_error(500, "boom"));
        assert!(outage.failing);
        outage.failed("AmpWorker", &watch_error(500, "boom"));
        assert!(outage.failing);
        outage.recovered("AmpWorker");
        assert!(!outage.failing);
        // A relist alone does not start an outage.
        outage.failed("AmpWorker", &watch_error(410, "too old"));
        assert!(!outage.failing);
    }
}
