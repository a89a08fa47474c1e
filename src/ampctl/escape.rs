//! Text from the network (node ids, versions, error messages) made safe for a terminal:
//! every control character is shown as a visible escape, so a worker that reports
//! `v1\e[2J\nFAKE` as its version cannot clear the screen or forge a table row.
//! Machine output (`--json`, `--output csv`) stays exact.

use crate::admin_api::wire::{Worker, WorkerInfo};

pub use crate::terminal::escape_control;

/// A worker whose every server-supplied string is escaped for display.
pub fn for_terminal(w: &Worker) -> Worker {
    let esc = |s: &Option<String>| s.as_deref().map(escape_control);
    Worker {
        node_id: escape_control(&w.node_id),
        info: WorkerInfo {
            version: esc(&w.info.version),
            commit_sha: esc(&w.info.commit_sha),
            commit_timestamp: esc(&w.info.commit_timestamp),
            build_date: esc(&w.info.build_date),
        },
        ..w.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible_escapes() {
        assert_eq!(escape_control("v1\u{1b}[2J\nFAKE"), "v1\\e[2J\\nFAKE");
        assert_eq!(
            escape_control("a\tb\rc\u{7f}\u{9b}"),
            "a\\tb\\rc\\u{7f}\\u{9b}"
        );
        assert_eq!(
            escape_control("v0.0.22-15-g8b065bde"),
            "v0.0.22-15-g8b065bde"
        );
        assert_eq!(escape_control("ümlaut ✓"), "ümlaut ✓");
        assert!(
            !escape_control("\u{1b}\u{7}\u{8}\u{0}")
                .chars()
                .any(char::is_control)
        );
    }
}
