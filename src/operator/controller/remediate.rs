//! The remediation effect: delete a hung worker's Pod (precondition: its uid, so a Pod
//! already recreated under the name is never touched), remember it for the back-off,
//! and say so (Warning events on the AmpWorker and the Pod, the metric). A 403 is said
//! once (an event on the fleet and one log line), then nothing is tried again until
//! the operator restarts: RBAC does not change by waiting.

use chrono::Utc;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Preconditions};

use super::super::crd::{AmpWorker, AmpWorkerFleet};
use super::super::plan::{
    DRY_RUN_REASON, RESTARTED_REASON, RemediationAction, RemediationSkip, WorkerRemediations,
};
use super::super::remediation::History;
use super::super::status::StatusEvent;
use super::Reconciler;
use super::events::object_ref;

/// Reason of the one Warning on a fleet when the operator may not delete Pods.
pub const REMEDIATION_FORBIDDEN_REASON: &str = "RemediationForbidden";

/// The RemediationForbidden event's note: what was refused and how to grant it (the
/// chart grants `delete` on Pods only with `fleet.remediation.mode=Restart`).
fn forbidden_note(message: &str, node_id: &str) -> String {
    format!(
        "the operator may not delete Pods ({message}); worker {node_id:?} stays hung. Grant delete on pods (the chart's fleet.remediation.mode=Restart) or set spec.remediation.mode to DryRun"
    )
}

/// How a delete ended.
enum Deleted {
    Yes,
    /// Already gone, or replaced (the uid precondition failed): nothing to do.
    Gone,
    Forbidden(String),
    Failed(String),
}

impl Reconciler {
    /// Counts skips whose reason changed since the last cycle (a worker held back for an
    /// hour is one count, not 3,600).
    pub(super) fn count_skips(&mut self, skips: &[RemediationSkip]) {
        let mut now: std::collections::HashMap<String, super::super::remediation::SkipReason> =
            std::collections::HashMap::with_capacity(skips.len());
        for (node_id, reason) in skips {
            if self.last_skips.get(node_id) != Some(reason) {
                self.metrics.count_remediation("skipped", reason.as_str());
                tracing::info!(node_id = %node_id, reason = reason.as_str(), "hung worker not restarted");
            }
            now.insert(node_id.clone(), *reason);
        }
        self.last_skips = now;
    }

    /// Carries out the plan's remediations, one at a time (there are at most one per
    /// fleet per cycle).
    pub(super) async fn remediate(&mut self, actions: Vec<RemediationAction>) -> usize {
        let mut done = 0;
        for a in actions {
            done += usize::from(self.remediate_one(&a).await);
        }
        done
    }

    async fn remediate_one(&mut self, a: &RemediationAction) -> bool {
        if a.dry_run {
            self.remember(a, false);
            self.metrics.count_remediation("dry_run", "due");
            tracing::warn!(node_id = %a.node_id, pod = %a.pod, fleet = %a.fleet, "dry run: would restart hung worker");
            self.announce(a, DRY_RUN_REASON).await;
            return false;
        }
        if self.delete_forbidden {
            // Said once already (the event, the log line, the metric).
            return false;
        }
        match self.delete_pod(a).await {
            Deleted::Yes => {
                self.remember(a, true);
                self.metrics.count_remediation("restarted", "due");
                tracing::warn!(node_id = %a.node_id, pod = %a.pod, fleet = %a.fleet, "restarted hung worker: deleted its Pod");
                self.announce(a, RESTARTED_REASON).await;
                true
            }
            Deleted::Gone => {
                self.metrics.count_remediation("skipped", "pod_gone");
                false
            }
            Deleted::Forbidden(message) => {
                self.delete_forbidden = true;
                self.metrics.count_remediation("failed", "forbidden");
                tracing::error!(pod = %a.pod, error = %message, "may not delete Pods: hung workers will not be restarted (the chart's fleet.remediation.mode=Restart grants it, or set mode DryRun)");
                let event = StatusEvent {
                    reason: REMEDIATION_FORBIDDEN_REASON,
                    warning: true,
                    note: forbidden_note(&message, &a.node_id),
                };
                let fleet = object_ref::<AmpWorkerFleet>(&a.fleet, &self.config.namespace, None);
                self.events.publish(&event, &fleet).await;
                false
            }
            Deleted::Failed(message) => {
                // Remembered as an attempt: the back-off spaces the retries.
                self.remember(a, false);
                self.metrics.count_remediation("failed", "api_error");
                tracing::warn!(pod = %a.pod, error = %message, "deleting a hung worker's Pod failed; will retry after the back-off");
                false
            }
        }
    }

    async fn delete_pod(&self, a: &RemediationAction) -> Deleted {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: a.pod_uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.pods_api.delete(&a.pod, &params).await {
            Ok(_) => {
                self.metrics.count_write("pod_delete", true);
                Deleted::Yes
            }
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Deleted::Gone,
            Err(kube::Error::Api(e)) if e.code == 403 => {
                self.metrics.count_write("pod_delete", false);
                Deleted::Forbidden(e.message)
            }
            Err(err) => {
                self.metrics.count_write("pod_delete", false);
                Deleted::Failed(super::super::kube_message(&err))
            }
        }
    }

    /// The back-off (every attempt) and the status record (deletions only).
    fn remember(&mut self, a: &RemediationAction, restarted: bool) {
        let now = Utc::now();
        let entry = self
            .history
            .workers
            .entry(a.node_id.clone())
            .or_insert(WorkerRemediations {
                attempts: a.recorded.unwrap_or(History {
                    last: now,
                    count: 0,
                }),
                restarts: a.recorded,
            });
        entry.attempts = History {
            last: now,
            count: entry.attempts.count + 1,
        };
        if restarted {
            let before = entry.restarts.map_or(0, |h| h.count);
            entry.restarts = Some(History {
                last: now,
                count: before + 1,
            });
        }
        self.history.fleets.insert(a.fleet.clone(), now);
    }

    /// The Warning on the AmpWorker and on the Pod.
    async fn announce(&self, a: &RemediationAction, reason: &'static str) {
        let event = StatusEvent {
            reason,
            warning: true,
            note: a.note.clone(),
        };
        let ns = &self.config.namespace;
        let worker = object_ref::<AmpWorker>(&a.worker, ns, a.worker_uid.as_deref());
        let pod = object_ref::<Pod>(&a.pod, ns, a.pod_uid.as_deref());
        self.events.publish(&event, &worker).await;
        self.events.publish(&event, &pod).await;
    }
}

#[cfg(test)]
mod tests {
    use super::forbidden_note;

    #[test]
    fn the_forbidden_note_names_the_chart_value_that_grants_delete() {
        assert_eq!(
            forbidden_note("pods \"w-0\" is forbidden", "w-0"),
            "the operator may not delete Pods (pods \"w-0\" is forbidden); worker \"w-0\" stays hung. \
             Grant delete on pods (the chart's fleet.remediation.mode=Restart) or set spec.remediation.mode to DryRun"
        );
    }
}
