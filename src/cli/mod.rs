//! Command lines of the two binaries.

pub mod ampd;
