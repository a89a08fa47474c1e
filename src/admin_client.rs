//! Typed Admin API client. Placeholder: replaced by the Admin API issue.
