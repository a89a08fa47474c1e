//! Text from the network or the database made safe for a terminal: every control
//! character is shown as a visible escape, so a worker that reports `v1\e[2J\nFAKE` as
//! its version, or a server message carrying escapes, cannot clear the screen or forge
//! a line.

/// `s` with control characters (C0, DEL, C1) escaped: `\e`, `\n`, `\r`, `\t`, `\u{..}`.
pub fn escape_control(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\u{1b}' => out.push_str("\\e"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible() {
        assert_eq!(
            escape_control("role \"a\u{1b}[2J\nb\u{7f}\" does not exist"),
            "role \"a\\e[2J\\nb\\u{7f}\" does not exist"
        );
        assert_eq!(escape_control("wörker-01"), "wörker-01");
    }
}
