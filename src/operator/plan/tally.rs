//! What one cycle counts while it judges every worker: per fleet (members, Pods, hung
//! workers, jobs) and over all workers (condition counts, jobs stranded and not picked
//! up); turned into the fleets' statuses and the cycle's totals at the end.

use super::super::fleet_status::{FleetTally, Member};
use super::super::status::ConditionStatus;
use super::super::status::jobs::{FleetJobsTally, JobFacts};
use super::fleets::{self, FleetSel};
use super::pods::{self, FleetPodTally};
use super::remediate::{self, Candidate};
use super::{Cycle, Plan, PlanInput, PodInput};

pub(super) struct CycleTally<'a> {
    pub(super) fleets: Vec<FleetTally>,
    pub(super) pods: Vec<FleetPodTally<'a>>,
    /// Per fleet with remediation on: its workers that may be hung.
    pub(super) hung: Vec<Vec<Candidate<'a>>>,
    jobs: Vec<FleetJobsTally>,
    stranded: i64,
    not_accepting: i64,
    /// Per condition type, how many workers read True, False and Unknown.
    counts: [[i64; 3]; 4],
}

impl<'a> CycleTally<'a> {
    pub(super) fn new(
        c: &Cycle<'a>,
        fleets: &[FleetSel<'a>],
        pod_indexes: &'a [Option<pods::FleetPodIndex>],
    ) -> Self {
        CycleTally {
            fleets: fleets::tallies(fleets, c.db_now),
            pods: pods::tallies(pod_indexes),
            hung: fleets.iter().map(|_| Vec::new()).collect(),
            jobs: vec![FleetJobsTally::default(); fleets.len()],
            stranded: 0,
            not_accepting: 0,
            counts: [[0; 3]; 4],
        }
    }

    /// A judged worker: its fleet's member (when it has a fleet), its jobs and its
    /// conditions.
    pub(super) fn add(
        &mut self,
        fleet: Option<usize>,
        pod_linked: Option<bool>,
        m: &Member,
        conditions: &[ConditionStatus; 4],
        jobs: Option<&JobFacts>,
    ) {
        if let Some(i) = fleet {
            self.fleets[i].add(m, pod_linked);
        }
        if let Some(jobs) = jobs {
            self.stranded += jobs.stranded;
            self.not_accepting += i64::from(jobs.not_accepting);
            if let Some(i) = fleet {
                self.jobs[i].add(m.node_id, jobs);
            }
        }
        super::count_conditions(&mut self.counts, conditions);
    }

    /// The cycle's totals and every fleet's status, remediation included, into `plan`.
    pub(super) fn finish(
        mut self,
        c: &Cycle<'a>,
        fleets: &[FleetSel<'a>],
        input: &PlanInput,
        pod_input: &PodInput,
        plan: &mut Plan,
    ) {
        plan.worker_conditions = super::condition_counts(&self.counts);
        let outcomes =
            remediate::plan_remediation(c, fleets, &self.pods, self.hung, &pod_input.history, plan);
        plan.jobs_stranded = super::unclaimed_jobs(c, &mut self.jobs).map(|n| n + self.stranded);
        plan.workers_not_accepting_jobs = self.not_accepting;
        let extras = self
            .pods
            .into_iter()
            .zip(outcomes)
            .zip(self.jobs)
            .map(|((pods, remediation), jobs)| {
                let pods_without_row = pods.pods_without_row(c);
                fleets::FleetExtras {
                    pods: pods.summary(&pods_without_row),
                    pods_without_row,
                    remediation,
                    jobs,
                }
            })
            .collect();
        fleets::plan_fleets_with(input, fleets, self.fleets, extras, plan);
    }
}
