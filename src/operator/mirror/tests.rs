use std::sync::Arc;

use kube::runtime::watcher::Event;

use super::{Mirror, mirror};
use crate::operator::cache::CachedWorker;
use crate::operator::crd::{AmpWorker, AmpWorkerSpec};

fn worker(name: &str, node_id: &str) -> CachedWorker {
    CachedWorker::from(AmpWorker::new(
        name,
        AmpWorkerSpec {
            node_id: node_id.to_owned(),
            expected_version: None,
            heartbeat_timeout_seconds: None,
            job_pickup_timeout_seconds: None,
        },
    ))
}

/// (name, node id) of every object, in the mirror's order.
fn shown(m: &mut Mirror<CachedWorker>) -> Vec<(String, String)> {
    m.sync()
        .iter()
        .map(|w| {
            (
                w.metadata.name.clone().unwrap_or_default(),
                w.spec.node_id.clone(),
            )
        })
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// A mirror whose watch listed `items` (name, node id), taken in.
fn listed(items: &[(&str, &str)]) -> (Mirror<CachedWorker>, super::Feed<CachedWorker>) {
    let (mut m, feed) = mirror();
    feed.apply(Event::Init);
    for (name, node_id) in items {
        feed.apply(Event::InitApply(worker(name, node_id)));
    }
    feed.apply(Event::InitDone);
    m.sync();
    (m, feed)
}

fn is_ready(m: &Mirror<CachedWorker>) -> bool {
    *m.ready.borrow()
}

#[tokio::test]
async fn a_list_shows_only_once_complete_and_then_the_mirror_is_ready() {
    let (mut m, feed) = mirror();
    feed.apply(Event::Init);
    feed.apply(Event::InitApply(worker("a", "A")));
    feed.apply(Event::InitApply(worker("b", "B")));
    assert!(shown(&mut m).is_empty(), "half a list is not shown");
    assert!(!is_ready(&m));
    feed.apply(Event::InitDone);
    m.ready().await.expect("ready");
    assert_eq!(shown(&mut m), pairs(&[("a", "A"), ("b", "B")]));
    assert_eq!(m.sync().len(), 2);
}

#[tokio::test]
async fn a_change_replaces_its_object_in_place_and_leaves_the_others_untouched() {
    let (mut m, feed) = listed(&[("a", "A"), ("b", "B"), ("c", "C")]);
    let before: Vec<Arc<CachedWorker>> = m.sync().to_vec();
    feed.apply(Event::Apply(worker("b", "B2")));
    assert_eq!(shown(&mut m), pairs(&[("a", "A"), ("b", "B2"), ("c", "C")]));
    let after: Vec<Arc<CachedWorker>> = m.sync().to_vec();
    assert!(Arc::ptr_eq(&before[0], &after[0]), "a is the same object");
    assert!(Arc::ptr_eq(&before[2], &after[2]), "c is the same object");
    assert!(!Arc::ptr_eq(&before[1], &after[1]));
    // Nothing new: the same objects again.
    assert!(Arc::ptr_eq(&m.sync()[1], &after[1]));
}

#[tokio::test]
async fn a_delete_gives_its_place_to_the_last_object_which_is_still_found_by_name() {
    let (mut m, feed) = listed(&[("a", "A"), ("b", "B"), ("c", "C")]);
    feed.apply(Event::Delete(worker("a", "A")));
    assert_eq!(shown(&mut m), pairs(&[("c", "C"), ("b", "B")]));
    // c moved: a change to it still lands in its (new) place, not in a stale one.
    feed.apply(Event::Apply(worker("c", "C2")));
    feed.apply(Event::Apply(worker("d", "D")));
    assert_eq!(shown(&mut m), pairs(&[("c", "C2"), ("b", "B"), ("d", "D")]));
    // Deleting the last object moves nothing; deleting an unknown one changes nothing.
    feed.apply(Event::Delete(worker("d", "D")));
    feed.apply(Event::Delete(worker("zz", "Z")));
    assert_eq!(shown(&mut m), pairs(&[("c", "C2"), ("b", "B")]));
    assert_eq!(m.index.len(), 2);
}

#[tokio::test]
async fn changes_between_syncs_keep_only_the_latest_per_name() {
    let (mut m, feed) = mirror();
    feed.apply(Event::Init);
    feed.apply(Event::InitDone);
    for i in 0..1000 {
        feed.apply(Event::Apply(worker("a", &format!("A{i}"))));
    }
    feed.apply(Event::Apply(worker("gone", "G")));
    feed.apply(Event::Delete(worker("gone", "G")));
    feed.apply(Event::Delete(worker("back", "B")));
    feed.apply(Event::Apply(worker("back", "B2")));
    assert_eq!(super::open(&m.inbox).changes.len(), 3, "one entry per name");
    let mut got = shown(&mut m);
    got.sort();
    assert_eq!(got, pairs(&[("a", "A999"), ("back", "B2")]));
    assert!(super::open(&m.inbox).changes.is_empty());
}

#[tokio::test]
async fn a_relist_replaces_everything_and_what_came_before_it() {
    let (mut m, feed) = listed(&[("a", "A"), ("b", "B")]);
    // A change the cycle has not taken in yet, then a relist (after a 410, say) that
    // no longer has a and has b changed: the relist is the truth.
    feed.apply(Event::Apply(worker("a", "A2")));
    feed.apply(Event::Init);
    feed.apply(Event::InitApply(worker("b", "B3")));
    feed.apply(Event::InitApply(worker("c", "C")));
    assert_eq!(
        shown(&mut m),
        pairs(&[("a", "A2"), ("b", "B")]),
        "until the relist is complete, the old list and its changes stand"
    );
    feed.apply(Event::InitDone);
    feed.apply(Event::Apply(worker("c", "C4")));
    assert_eq!(shown(&mut m), pairs(&[("b", "B3"), ("c", "C4")]));
    assert_eq!(m.index.len(), 2);
}

#[tokio::test]
async fn ready_fails_when_the_watch_task_is_gone_before_its_first_list() {
    let (m, feed) = mirror::<CachedWorker>();
    drop(feed);
    assert_eq!(
        m.ready().await.unwrap_err().to_string(),
        "the watch feeding this cache stopped"
    );
}
