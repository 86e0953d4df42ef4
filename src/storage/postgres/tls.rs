//! TLS to PostgreSQL with rustls (issue 14): the `sslmode` of the database URL, as libpq
//! defines it (PostgreSQL manual, "SSL Support", table "SSL Mode Descriptions"), with the
//! bundled Mozilla roots plus an optional PEM file of a private CA (`--database-ca-file`):
//!
//! | `sslmode` | TLS | certificate checked |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (the default) | if the server offers it, else plain TCP | no |
//! | `require` | always: a server without TLS is refused | no; with a CA file, the chain (as `verify-ca`) |
//! | `verify-ca` | always | the chain, to the roots |
//! | `verify-full` | always | the chain, and the host name (or IP address) it was reached by |
//!
//! A URL asking for TLS never falls back to plain text: the driver refuses a server that
//! does not accept TLS when the mode is `require` or stronger (tokio-postgres only knows
//! `disable`/`prefer`/`require`, so [`Target::parse`] reads the two `verify-*` modes itself
//! and hands the driver `require`).
//!
//! A Unix-domain socket (`host=/var/run/postgresql`) carries no TLS: PostgreSQL does not
//! offer it there and libpq ignores `sslmode` for such sockets, so do we ([`Target::parse`]
//! turns TLS off when every host is a socket; [`MakeTls`] accepts the driver's empty host
//! name for them).

use std::sync::Arc;

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    client::WebPkiServerVerifier,
    crypto::CryptoProvider,
    pki_types::{pem::PemObject as _, CertificateDer, ServerName, UnixTime},
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::storage::StorageError;

/// What the database URL asks of TLS (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `sslmode=disable`.
    Disable,
    /// `sslmode=prefer`, and no `sslmode` at all.
    Prefer,
    /// `sslmode=require`.
    Require,
    /// `sslmode=verify-ca`.
    VerifyCa,
    /// `sslmode=verify-full`.
    VerifyFull,
}

/// A parsed database URL: the driver's configuration, the TLS mode and the private CA.
/// Dereferences to the driver's configuration. Its `Debug` names hosts and database only.
#[derive(Clone)]
pub struct Target {
    driver: tokio_postgres::Config,
    mode: Mode,
    ca_pem: Option<Arc<Vec<u8>>>,
}

impl Target {
    /// Parses a `postgres://` URL or `key=value` string. The error never repeats the URL
    /// (it may hold a password).
    pub fn parse(url: &str) -> Result<Self, StorageError> {
        let (driver_url, verify) = take_verify_mode(url);
        let driver: tokio_postgres::Config =
            driver_url.parse().map_err(|e: tokio_postgres::Error| {
                StorageError::Database(format!("the database URL is not valid: {e}"))
            })?;
        let mode = verify.unwrap_or(match driver.get_ssl_mode() {
            SslMode::Disable => Mode::Disable,
            SslMode::Require => Mode::Require,
            _ => Mode::Prefer,
        });
        let mut target = Self {
            driver,
            mode,
            ca_pem: None,
        };
        target.no_tls_on_sockets();
        Ok(target)
    }

    /// Turns TLS off if every host is a Unix-domain socket (module doc).
    fn no_tls_on_sockets(&mut self) {
        #[cfg(unix)]
        {
            let hosts = self.driver.get_hosts();
            if !hosts.is_empty()
                && hosts
                    .iter()
                    .all(|h| matches!(h, tokio_postgres::config::Host::Unix(_)))
            {
                self.driver.ssl_mode(SslMode::Disable);
                self.mode = Mode::Disable;
            }
        }
    }

    /// Trusts the certificates of this PEM text beside the bundled roots.
    pub fn with_ca_pem(mut self, pem: Option<Vec<u8>>) -> Self {
        self.ca_pem = pem.map(Arc::new);
        self
    }

    /// The TLS mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The driver's configuration.
    pub fn driver(&self) -> &tokio_postgres::Config {
        &self.driver
    }

    /// The connector for this mode and these roots; errors name what is wrong with the CA.
    pub fn connector(&self) -> Result<MakeTls, StorageError> {
        connector(self.mode, self.ca_pem.as_deref().map(Vec::as_slice))
    }
}

impl From<tokio_postgres::Config> for Target {
    /// A driver configuration as it is: `require` is `require`, nothing stronger.
    fn from(driver: tokio_postgres::Config) -> Self {
        let mode = match driver.get_ssl_mode() {
            SslMode::Disable => Mode::Disable,
            SslMode::Require => Mode::Require,
            _ => Mode::Prefer,
        };
        let mut target = Self {
            driver,
            mode,
            ca_pem: None,
        };
        target.no_tls_on_sockets();
        target
    }
}

impl std::ops::Deref for Target {
    type Target = tokio_postgres::Config;

    fn deref(&self) -> &tokio_postgres::Config {
        &self.driver
    }
}

impl std::ops::DerefMut for Target {
    fn deref_mut(&mut self) -> &mut tokio_postgres::Config {
        &mut self.driver
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", super::describe(&self.driver), self.mode)
    }
}

/// Replaces `sslmode=verify-ca` / `verify-full` (in the query of a URL, or among the
/// `key=value` pairs) by `sslmode=require`, which the driver knows; answers the mode found.
fn take_verify_mode(url: &str) -> (String, Option<Mode>) {
    for (value, mode) in [
        ("verify-full", Mode::VerifyFull),
        ("verify-ca", Mode::VerifyCa),
    ] {
        let needle = format!("sslmode={value}");
        let mut search = 0;
        while let Some(found) = url.get(search..).and_then(|rest| rest.find(&needle)) {
            let at = search + found;
            let end = at + needle.len();
            let before = url.get(..at).and_then(|b| b.chars().last());
            let after = url.get(end..).and_then(|a| a.chars().next());
            let starts = matches!(before, None | Some('?' | '&' | ' ' | '\t' | '\n'));
            let ends = matches!(after, None | Some('&' | ' ' | '\t' | '\n' | '#'));
            if starts && ends {
                let rewritten = format!(
                    "{}sslmode=require{}",
                    url.get(..at).unwrap_or_default(),
                    url.get(end..).unwrap_or_default()
                );
                return (rewritten, Some(mode));
            }
            search = end;
        }
    }
    (url.to_owned(), None)
}

/// The roots: the bundled Mozilla set plus the certificates of `ca_pem`.
fn roots(ca_pem: Option<&[u8]>) -> Result<RootCertStore, StorageError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = ca_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| ca_error(format!("unreadable PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| ca_error(format!("not a usable CA certificate: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(ca_error("no certificate in it".to_owned()));
        }
    }
    Ok(roots)
}

fn ca_error(reason: String) -> StorageError {
    StorageError::Database(format!("the database CA file: {reason}"))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls connector for `mode` (see the module docs).
pub fn connector(mode: Mode, ca_pem: Option<&[u8]>) -> Result<MakeTls, StorageError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| StorageError::Database(format!("TLS set-up: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, ca_pem) {
        // Never used for `disable` (the driver does not start TLS); `prefer` and a bare
        // `require` promise encryption only, as libpq's do.
        (Mode::Disable | Mode::Prefer, _) | (Mode::Require, None) => {
            Arc::new(EncryptionOnly(provider))
        }
        (Mode::Require | Mode::VerifyCa, _) => Arc::new(ChainOnly(webpki(ca_pem, &provider)?)),
        (Mode::VerifyFull, _) => webpki(ca_pem, &provider)?,
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeTls(MakeRustlsConnect::new(config)))
}

/// The driver's TLS connector: rustls's, except that it accepts the empty host name the
/// driver gives for a Unix-domain socket (there is no name to verify; TLS is off for
/// sockets, so that connector is never used: module doc).
#[derive(Clone)]
pub struct MakeTls(MakeRustlsConnect);

impl<S> tokio_postgres::tls::MakeTlsConnect<S> for MakeTls
where
    MakeRustlsConnect: tokio_postgres::tls::MakeTlsConnect<S>,
{
    type Stream = <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::Stream;
    type TlsConnect = <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::TlsConnect;
    type Error = <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        let domain = if domain.is_empty() {
            "localhost"
        } else {
            domain
        };
        self.0.make_tls_connect(domain)
    }
}

fn webpki(
    ca_pem: Option<&[u8]>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, StorageError> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots(ca_pem)?), Arc::clone(provider))
        .build()
        .map_err(|e| StorageError::Database(format!("TLS set-up: {e}")))
}

/// `verify-ca` (and `require` with a CA file): the full WebPKI check of the chain, its
/// dates and usage, with only a name mismatch forgiven.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The name is checked last (after the chain, the dates and the usage), so a name
        // error means everything else held.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a CA file (libpq's meaning): the connection is encrypted
/// and the handshake signatures are checked, but whose certificate it is is not.
#[derive(Debug)]
struct EncryptionOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptionOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_modes_are_read_and_handed_to_the_driver_as_require() {
        for (url, mode) in [
            ("postgres://a@h/db", Mode::Prefer),
            ("postgres://a@h/db?sslmode=disable", Mode::Disable),
            ("postgres://a@h/db?sslmode=prefer", Mode::Prefer),
            ("postgres://a@h/db?sslmode=require", Mode::Require),
            ("postgres://a@h/db?sslmode=verify-ca", Mode::VerifyCa),
            (
                "postgres://a@h/db?application_name=x&sslmode=verify-full",
                Mode::VerifyFull,
            ),
            (
                "postgres://a@h/db?sslmode=verify-full&application_name=x",
                Mode::VerifyFull,
            ),
            ("host=h user=a sslmode=verify-full", Mode::VerifyFull),
            ("host=h sslmode=verify-ca user=a", Mode::VerifyCa),
        ] {
            let target = Target::parse(url).unwrap();
            assert_eq!(target.mode(), mode, "{url}");
            let driver_mode = target.get_ssl_mode();
            match mode {
                Mode::Disable => assert_eq!(driver_mode, SslMode::Disable, "{url}"),
                Mode::Prefer => assert_eq!(driver_mode, SslMode::Prefer, "{url}"),
                _ => assert_eq!(driver_mode, SslMode::Require, "{url}"),
            }
        }
        // A password that merely contains the text is not a mode.
        let target = Target::parse("postgres://a:xsslmode=verify-full@h/db").unwrap();
        assert_eq!(target.mode(), Mode::Prefer);
        assert!(Target::parse("postgres://a@h/db?sslmode=verify-everything").is_err());
    }

    #[test]
    fn a_ca_file_without_certificates_is_an_error() {
        let err = connector(Mode::VerifyFull, Some(b"not pem")).err().unwrap();
        assert!(err.to_string().contains("CA file"), "{err}");
        assert!(connector(Mode::VerifyFull, None).is_ok());
        assert!(connector(Mode::Require, None).is_ok());
    }
}
