//! Database URLs carry passwords; nothing we log or print may show one.

use url::Url;

/// The URL with any password replaced by `***`. Unparseable input is replaced whole,
/// since we cannot tell which part is secret.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        Err(_) => "<unparseable database URL>".to_owned(),
    }
}

/// sqlx errors can echo the URL (or its password) back; strip it before the error travels.
pub(crate) fn scrub_error(err: sqlx::Error, raw_url: &str) -> sqlx::Error {
    let password = Url::parse(raw_url)
        .ok()
        .and_then(|u| u.password().map(str::to_owned));
    let text = err.to_string();
    match password {
        Some(pw) if !pw.is_empty() && (text.contains(&pw) || text.contains(raw_url)) => {
            sqlx::Error::Configuration(
                text.replace(raw_url, &redact_url(raw_url))
                    .replace(&pw, "***")
                    .into(),
            )
        }
        _ => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_hidden() {
        assert_eq!(
            redact_url("postgres://amp:s3cr3t@db:5432/amp?sslmode=disable"),
            "postgres://amp:***@db:5432/amp?sslmode=disable"
        );
        assert_eq!(redact_url("postgres://amp@db/amp"), "postgres://amp@db/amp");
        assert_eq!(redact_url("not a url s3cr3t"), "<unparseable database URL>");
    }
}
