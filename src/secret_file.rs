//! One secret held in a file (a mounted Kubernetes Secret, a Vault agent's output):
//! read whole, without the trailing newline, never formatted. Errors name the file and
//! the I/O cause, never its content. Used by `metadata_db::credentials` (the DB URL and
//! password, the Admin API's token) and by `ampctl --auth-token-file`.

use std::path::{Path, PathBuf};

/// A secret file larger than this is refused (a wrong path, e.g. a log file).
const MAX_FILE_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {} is empty", path.display())]
    Empty { what: &'static str, path: PathBuf },
    #[error("{what} {} is larger than 64 KiB (is it the right file?)", path.display())]
    TooLarge { what: &'static str, path: PathBuf },
    #[error("{what} {} is not UTF-8 text", path.display())]
    NotText { what: &'static str, path: PathBuf },
}

/// One file holding one secret (trailing whitespace, such as the newline an editor or
/// `echo` adds, is not part of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFile {
    what: &'static str,
    path: PathBuf,
}

impl SecretFile {
    /// `what` names the file in errors ("the database password file").
    pub fn new(what: &'static str, path: impl Into<PathBuf>) -> Self {
        Self {
            what,
            path: path.into(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's current content, without trailing whitespace.
    pub fn read(&self) -> Result<String, SecretFileError> {
        let (what, path) = (self.what, self.path.clone());
        let read = |source| SecretFileError::Read {
            what,
            path: path.clone(),
            source,
        };
        let len = std::fs::metadata(&self.path).map_err(read)?.len();
        if len > MAX_FILE_BYTES {
            return Err(SecretFileError::TooLarge { what, path });
        }
        let bytes = std::fs::read(&self.path).map_err(read)?;
        let text = String::from_utf8(bytes).map_err(|_| SecretFileError::NotText {
            what,
            path: path.clone(),
        })?;
        let secret = text.trim_end();
        if secret.is_empty() {
            return Err(SecretFileError::Empty { what, path });
        }
        Ok(secret.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_read_without_their_trailing_newline_and_errors_name_only_the_path() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("password");
        let file = SecretFile::new("the database password file", &path);
        let missing = file.read().expect_err("missing").to_string();
        assert!(
            missing.starts_with(&format!(
                "cannot read the database password file {}: ",
                path.display()
            )),
            "{missing}"
        );
        std::fs::write(&path, "s3cr3t \n").expect("write");
        assert_eq!(file.read().expect("read"), "s3cr3t");
        std::fs::write(&path, "\n").expect("write");
        assert_eq!(
            file.read().expect_err("empty").to_string(),
            format!("the database password file {} is empty", path.display())
        );
        std::fs::write(&path, [0xff, 0xfe]).expect("write");
        assert!(
            !file
                .read()
                .expect_err("binary")
                .to_string()
                .contains('\u{fffd}')
        );
        std::fs::write(&path, vec![b'a'; 70 * 1024]).expect("write");
        assert!(matches!(file.read(), Err(SecretFileError::TooLarge { .. })));
    }
}
