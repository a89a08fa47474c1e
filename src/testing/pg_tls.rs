//! Certificates for the throwaway PostgreSQL, made per run with rcgen: a CA, a server
//! certificate signed by it, and a client certificate for the `amp` user (`cert` auth).
//! Stands on its own: [`super::postgres`] uses it, never the other way round.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Why the certificates could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum PgTlsError {
    #[error("{0}")]
    Certificates(String),
    #[error("write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How the server takes connections (its `ssl` setting and `pg_hba.conf` rules).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PgAccess {
    /// `ssl=on`, plain connections accepted too: sqlx's default `sslmode=prefer` uses TLS.
    #[default]
    TlsOffered,
    /// `hostssl` rules only (trust): plain connections are refused by pg_hba.
    TlsOnly,
    /// `hostssl` with `cert` auth: a client certificate whose CN is the user name.
    ClientCert,
    /// `ssl=off`: a server without TLS.
    Plain,
}

/// The server certificate's names and validity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCert {
    /// DNS names or IP addresses (`127.0.0.1`) the certificate is valid for.
    pub names: Vec<String>,
    /// Validity ended in the past (2020).
    pub expired: bool,
}

impl Default for ServerCert {
    fn default() -> Self {
        Self {
            names: vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
            expired: false,
        }
    }
}

/// The PEM files of one run.
#[derive(Debug, Clone)]
pub struct PgTlsFiles {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Client certificate (CN `amp`) and its key, signed by the same CA.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl PgTlsFiles {
    /// Writes a fresh CA, server and client certificate into `dir`.
    pub fn generate(dir: &Path, server: &ServerCert) -> Result<Self, PgTlsError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let (ca_pem, issuer) = new_ca("amp-test-postgres-ca")?;
        let server_pair = leaf(&issuer, server_params(server)?)?;
        let mut client = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
        client.distinguished_name.push(DnType::CommonName, "amp");
        let client_pair = leaf(&issuer, client)?;
        let files = Self {
            ca: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
        };
        write(&files.ca, &ca_pem)?;
        write(&files.server_cert, &server_pair.0)?;
        write(&files.server_key, &server_pair.1)?;
        write(&files.client_cert, &client_pair.0)?;
        write(&files.client_key, &client_pair.1)?;
        Ok(files)
    }
}

/// A CA that signed nothing the server presents (the "wrong CA" case), as PEM.
pub fn unrelated_ca_pem() -> Result<String, PgTlsError> {
    new_ca("amp-test-unrelated-ca").map(|(pem, _)| pem)
}

fn new_ca(name: &str) -> Result<(String, Issuer<'static, KeyPair>), PgTlsError> {
    let key = KeyPair::generate().map_err(cert_err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name.push(DnType::CommonName, name);
    let pem = ca.self_signed(&key).map_err(cert_err)?.pem();
    Ok((pem, Issuer::new(ca, key)))
}

fn server_params(server: &ServerCert) -> Result<CertificateParams, PgTlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
    for name in &server.names {
        params.subject_alt_names.push(match name.parse() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(name.clone().try_into().map_err(cert_err)?),
        });
    }
    params
        .distinguished_name
        .push(DnType::CommonName, "amp-test-postgres");
    if server.expired {
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    }
    Ok(params)
}

/// (certificate PEM, key PEM) signed by `issuer`.
fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    params: CertificateParams,
) -> Result<(String, String), PgTlsError> {
    let key = KeyPair::generate().map_err(cert_err)?;
    let cert = params.signed_by(&key, issuer).map_err(cert_err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn cert_err(e: rcgen::Error) -> PgTlsError {
    PgTlsError::Certificates(e.to_string())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PgTlsError + '_ {
    move |source| PgTlsError::Write {
        path: path.to_owned(),
        source,
    }
}

fn write(path: &Path, contents: &str) -> Result<(), PgTlsError> {
    std::fs::write(path, contents).map_err(io(path))
}
