//! Fleet planning: which fleet selects a worker (the oldest that matches), and each
//! fleet's status from the tally of its selected workers.

use std::collections::BTreeMap;

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
pub(super) fn tallies(fleets: &[FleetSel]) -> Vec<FleetTally> {
    fleets
        .iter()
        .map(|f| FleetTally::new(&f.fleet.spec.version))
        .collect()
}

/// Each fleet's desired status from its tally; a write (with its events) where it
/// differs from the stored one.
pub(super) fn plan_fleets(
    input: &PlanInput,
    fleets: &[FleetSel],
    tallies: Vec<FleetTally>,
    job_tallies: Vec<FleetJobsTally>,
    plan: &mut Plan,
) {
    // Fewer job tallies than fleets (none at all in some tests) count as empty ones.
    let job_tallies = job_tallies
        .into_iter()
        .chain(std::iter::repeat_with(FleetJobsTally::default));
    for ((f, tally), job_tally) in fleets.iter().zip(tallies).zip(job_tallies) {
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
        let mut desired = fleet_status_from(&judged, tally);
        apply_fleet_jobs(
            &mut desired,
            input.jobs,
            input.db,
            job_tally,
            stored,
            input.now,
        );
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
                ]
                .concat(),
                status: desired,
            });
        }
    }
}
