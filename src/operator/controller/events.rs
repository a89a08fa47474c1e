//! Events: best effort, cut to what the API server accepts, attached to an object by uid.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource};

use super::super::crd::FIELD_MANAGER;
use super::super::metrics::OperatorMetrics;
use super::super::status::StatusEvent;

/// events.k8s.io/v1 refuses notes longer than 1 kB.
pub const MAX_EVENT_NOTE_BYTES: usize = 1024;
/// Reason of the Warning event on an object whose name a discovered worker needs.
pub const NAME_COLLISION_REASON: &str = "NameCollision";

/// Publishes events as the operator (this replica is the reporting instance).
pub(super) struct Publisher {
    recorder: Recorder,
    metrics: Arc<OperatorMetrics>,
}

impl Publisher {
    pub(super) fn new(client: Client, identity: &str, metrics: Arc<OperatorMetrics>) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_owned(),
            instance: Some(identity.to_owned()),
        };
        Self {
            recorder: Recorder::new(client, reporter),
            metrics,
        }
    }

    /// Events are best effort: a failure is logged and counted, never retried (the
    /// status, which is retried, is the source of truth).
    pub(super) async fn publish(&self, event: &StatusEvent, reference: &ObjectReference) -> bool {
        let reason = event.reason;
        let ev = Event {
            type_: if event.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_owned(),
            note: Some(truncate_note(&event.note, MAX_EVENT_NOTE_BYTES).to_owned()),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        match self.recorder.publish(&ev, reference).await {
            Ok(()) => {
                self.metrics.count_event(reason);
                self.metrics.count_write("event", true);
                true
            }
            Err(err) => {
                self.metrics.count_write("event", false);
                tracing::warn!(reason, object = ?reference.name, error = %err, "event not published");
                false
            }
        }
    }
}

/// `note` cut to at most `max_bytes` bytes, on a character boundary (the API server
/// counts bytes; cutting inside a multi-byte character would make invalid UTF-8).
pub fn truncate_note(note: &str, max_bytes: usize) -> &str {
    if note.len() <= max_bytes {
        return note;
    }
    let mut end = max_bytes;
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    &note[..end]
}

/// The reference events point at, from kube's own `ObjectRef` (kind, apiVersion, name,
/// namespace) plus the uid, so an event never attaches to a re-created namesake.
pub(super) fn object_ref<K: Resource<DynamicType = ()>>(
    name: &str,
    namespace: &str,
    uid: Option<&str>,
) -> ObjectReference {
    let mut reference: ObjectReference = ObjectRef::<K>::new(name).within(namespace).into();
    reference.uid = uid.map(str::to_owned);
    reference
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_at_1024_bytes_on_a_char_boundary() {
        assert_eq!(truncate_note("short", MAX_EVENT_NOTE_BYTES), "short");
        let exact = "a".repeat(1024);
        assert_eq!(truncate_note(&exact, MAX_EVENT_NOTE_BYTES), exact);
        // 2-, 3- and 4-byte characters, offset so the limit falls inside one of each.
        for (pad, ch) in [
            (1, 'é'),
            (1, '€'),
            (2, '€'),
            (1, '😀'),
            (2, '😀'),
            (3, '😀'),
        ] {
            let note = format!("{}{}", "a".repeat(pad), ch.to_string().repeat(600));
            let cut = truncate_note(&note, MAX_EVENT_NOTE_BYTES);
            assert!(cut.len() <= MAX_EVENT_NOTE_BYTES, "{ch}: {}", cut.len());
            assert!(
                cut.len() > MAX_EVENT_NOTE_BYTES - ch.len_utf8(),
                "{ch}: no more cut than needed ({})",
                cut.len()
            );
            assert!(note.starts_with(cut));
            assert!(cut.ends_with(ch), "whole characters only");
        }
    }
}
