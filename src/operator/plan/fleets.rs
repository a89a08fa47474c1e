//! Fleet planning: which fleet selects a worker (the oldest that matches), and each
//! fleet's status from the tally of its selected workers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};

use super::super::crd::AmpWorkerFleet;
use super::super::fleet_status::{FleetJudged, FleetTally, fleet_events, fleet_status_from};
use super::super::status::DbView;
use super::super::status::jobs::{FleetJobsTally, apply_fleet_jobs, fleet_job_events};
use super::{Plan, PlanInput, StatusWrite};

pub(super) struct FleetSel<'a> {
    pub(super) fleet: &'a AmpWorkerFleet,
    selector: Result<Selector, String>,
}

impl FleetSel<'_> {
    fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        match &self.selector {
            Ok(s) => s.matches(labels),
            Err(_) => false,
        }
    }
}

/// The fleets with their parsed selectors, oldest first: when several select a worker,
/// the oldest one's version counts.
pub(super) fn ordered(fleets: &[std::sync::Arc<AmpWorkerFleet>]) -> Vec<FleetSel<'_>> {
    let mut sels: Vec<FleetSel> = fleets
        .iter()
        .map(|f| FleetSel {
            fleet: f,
            selector: match &f.spec.selector {
                None => Ok(Selector::default()),
                Some(s) => Selector::try_from(s.clone()).map_err(|e| e.to_string()),
            },
        })
        .collect();
    let key = |f: &FleetSel| {
        let created = f.fleet.metadata.creation_timestamp.as_ref().map(|t| t.0);
        (created, f.fleet.name_any())
    };
    sels.sort_by_key(key);
    sels
}

/// The index of the fleet selecting a worker with these labels, if any.
pub(super) fn fleet_of(
    fleets: &[FleetSel],
    labels: Option<&BTreeMap<String, String>>,
) -> Option<usize> {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    fleets.iter().position(|f| f.selects(labels))
}

/// One empty tally per fleet, for the judgement step to fill.
pub(super) fn tallies(fleets: &[FleetSel], db_now: Option<DateTime<Utc>>) -> Vec<FleetTally> {
    fleets
        .iter()
        .map(|f| FleetTally::new(&f.fleet.spec, db_now))
        .collect()
}

/// What a fleet's status shows besides its tally: its Pods, its remediation and its
/// workers' jobs.
#[derive(Default)]
pub(super) struct FleetExtras<'a> {
    /// The names of the Pods spec.podSelector selects whose node id has no worker row;
    /// empty without a podSelector. A Pod without a worker is a member that is not ready.
    pub(super) pods_without_row: Vec<&'a str>,
    pub(super) pods: Option<crate::operator::crd::FleetPods>,
    pub(super) remediation: Option<super::remediate::FleetOutcome>,
    pub(super) jobs: FleetJobsTally,
}

/// Each fleet's desired status from its tally alone (no Pods, remediation or jobs).
#[cfg(test)]
pub(super) fn plan_fleets(
    input: &PlanInput,
    fleets: &[FleetSel],
    tallies: Vec<FleetTally>,
    plan: &mut Plan,
) {
    plan_fleets_with(input, fleets, tallies, Vec::new(), plan);
}

/// Each fleet's desired status from its tally and extras (empty ones when `extras` is
/// short); a write (with its events) where it differs from the stored one.
pub(super) fn plan_fleets_with(
    input: &PlanInput,
    fleets: &[FleetSel],
    tallies: Vec<FleetTally>,
    extras: Vec<FleetExtras>,
    plan: &mut Plan,
) {
    let extras = extras
        .into_iter()
        .chain(std::iter::repeat_with(FleetExtras::default));
    for ((f, tally), extra) in fleets.iter().zip(tallies).zip(extras) {
        let stored = f
            .fleet
            .metadata
            .uid
            .as_ref()
            .and_then(|uid| input.written.fleets.get(uid))
            .or(f.fleet.status.as_ref());
        let judged = FleetJudged {
            spec: &f.fleet.spec,
            generation: f.fleet.metadata.generation,
            previous: stored,
            selector_error: f.selector.as_ref().err().map(String::as_str),
            now: input.now,
            db_failure: match input.db {
                DbView::Unavailable { cause } => *cause,
                DbView::Available { .. } => None,
            },
        };
        let mut tally = tally;
        for pod in &extra.pods_without_row {
            tally.add_pod_without_worker(pod);
        }
        let mut desired = fleet_status_from(&judged, tally);
        desired.pods = extra.pods;
        apply_fleet_jobs(
            &mut desired,
            input.jobs,
            input.db,
            extra.jobs,
            stored,
            input.now,
        );
        let remediation_events = super::remediate::apply_fleet_outcome(
            &mut desired,
            stored,
            extra.remediation,
            input.now,
            f.fleet.metadata.generation,
        );
        if desired.conditions.iter().any(|c| {
            c.type_ == super::REMEDIATION_ALLOWED
                && c.reason == super::remediate::TOO_MANY_UNHEALTHY
        }) {
            plan.remediation_paused.push(f.fleet.name_any());
        }
        for c in &desired.conditions {
            plan.fleet_conditions
                .push((f.fleet.name_any(), c.type_.clone(), c.status.clone()));
        }
        if stored != Some(&desired) {
            plan.fleet_writes.push(StatusWrite {
                name: f.fleet.name_any(),
                uid: f.fleet.metadata.uid.clone(),
                events: [
                    fleet_events(stored, &desired, &f.fleet.spec.version),
                    fleet_job_events(stored, &desired),
                    remediation_events,
                ]
                .concat(),
                status: desired,
            });
        }
    }
}
