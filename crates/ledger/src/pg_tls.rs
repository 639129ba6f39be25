//! TLS to the PostgreSQL ledger, with libpq's `sslmode` and `sslrootcert` connection
//! parameters (rustls; the system's roots unless a CA file is named):
//!
//! | `sslmode` | encrypted | certificate checked | host name checked |
//! |---|---|---|---|
//! | `disable` | no | - | - |
//! | `prefer` (default) | when the server offers TLS | no | no |
//! | `require` | yes | only when `sslrootcert` is given (as libpq does) | no |
//! | `verify-ca` | yes | yes | no |
//! | `verify-full` | yes | yes | yes |
//!
//! `sslrootcert` is a PEM file of CA certificates, or `system` for the system's roots.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// Where the CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Roots {
    /// The operating system's store.
    System,
    /// A PEM file (`sslrootcert=<path>`).
    File(String),
}

/// The TLS part of a connection URL, and the URL without it (for tokio-postgres, which
/// knows neither `verify-*` nor `sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TlsSettings {
    pub(super) mode: SslMode,
    pub(super) roots: Option<Roots>,
}

/// Splits `sslmode` and `sslrootcert` off `url`. An unknown `sslmode` is an error naming it.
pub(super) fn split_url(url: &str) -> Result<(String, TlsSettings), String> {
    let mut u = url::Url::parse(url).map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
    let mut mode = SslMode::Prefer;
    let mut roots = None;
    let mut rest = Vec::new();
    for (k, v) in u.query_pairs() {
        match &*k {
            "sslmode" => {
                mode = match &*v {
                    "disable" => SslMode::Disable,
                    "prefer" | "allow" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(format!(
                            "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
                        ));
                    }
                }
            }
            "sslrootcert" => {
                roots = Some(if v == "system" {
                    Roots::System
                } else {
                    Roots::File(v.into_owned())
                })
            }
            _ => rest.push((k.into_owned(), v.into_owned())),
        }
    }
    u.set_query(None);
    if !rest.is_empty() {
        u.query_pairs_mut().extend_pairs(rest);
    }
    Ok((u.to_string(), TlsSettings { mode, roots }))
}

impl TlsSettings {
    /// tokio-postgres's own mode: whether TLS is tried, and whether it is required.
    pub(super) fn driver_mode(&self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as M;
        match self.mode {
            SslMode::Disable => M::Disable,
            SslMode::Prefer => M::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => M::Require,
        }
    }

    /// The rustls configuration for this mode.
    pub(super) fn client_config(&self) -> Result<ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?;
        // libpq: `require` with a root certificate given verifies the chain like `verify-ca`.
        let mode = match (self.mode, &self.roots) {
            (SslMode::Require, Some(_)) => SslMode::VerifyCa,
            (m, _) => m,
        };
        let check = match mode {
            SslMode::Disable | SslMode::Prefer | SslMode::Require => Check::EncryptOnly,
            SslMode::VerifyCa => Check::Chain,
            SslMode::VerifyFull => Check::ChainAndName,
        };
        let verifier: Arc<dyn ServerCertVerifier> = match check {
            Check::EncryptOnly => Arc::new(EncryptOnly(provider)),
            Check::Chain | Check::ChainAndName => {
                let roots = self.root_store()?;
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| format!("TLS setup: {e}"))?;
                if check == Check::Chain {
                    Arc::new(ChainOnly(webpki))
                } else {
                    webpki
                }
            }
        };
        Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth())
    }

    fn root_store(&self) -> Result<RootCertStore, String> {
        let mut store = RootCertStore::empty();
        match self.roots.as_ref().unwrap_or(&Roots::System) {
            Roots::File(path) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("sslrootcert {path}: {e}"))?
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("sslrootcert {path}: {e}"))?;
                if certs.is_empty() {
                    return Err(format!("sslrootcert {path} holds no certificate"));
                }
                for c in certs {
                    store
                        .add(c)
                        .map_err(|e| format!("sslrootcert {path}: {e}"))?;
                }
            }
            Roots::System => {
                let found = rustls_native_certs::load_native_certs();
                for c in found.certs {
                    let _ = store.add(c);
                }
                if store.is_empty() {
                    return Err(
                        "no system root certificates found; name a CA file with sslrootcert=<path>"
                            .into(),
                    );
                }
            }
        }
        Ok(store)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    EncryptOnly,
    Chain,
    ChainAndName,
}

/// `prefer` / `require`: the connection is encrypted and the handshake signed by the key of
/// the certificate presented, but the certificate itself is not checked (libpq's meaning).
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
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
        verify_tls12_signature(
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
        verify_tls13_signature(
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

/// `verify-ca`: the chain must lead to a trusted root; the host name is not compared.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_split_off_the_url() {
        let (rest, s) = split_url(
            "postgres://u:p@db:5432/ledger?sslmode=verify-full&application_name=a&sslrootcert=/etc/ca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@db:5432/ledger?application_name=a");
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.roots, Some(Roots::File("/etc/ca.pem".into())));
        let (rest, s) = split_url("postgres://db/ledger").unwrap();
        assert_eq!(rest, "postgres://db/ledger");
        assert_eq!(s.mode, SslMode::Prefer, "libpq's default");
        assert_eq!(
            split_url("postgres://db/l?sslrootcert=system")
                .unwrap()
                .1
                .roots,
            Some(Roots::System)
        );
        let e = split_url("postgres://db/l?sslmode=verify_full").unwrap_err();
        assert!(e.contains("sslmode=verify_full"), "{e}");
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_named() {
        let s = TlsSettings {
            mode: SslMode::VerifyCa,
            roots: Some(Roots::File("/nonexistent/ca.pem".into())),
        };
        let e = s.client_config().unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let f = tempfile::NamedTempFile::new().unwrap();
        let s = TlsSettings {
            mode: SslMode::VerifyFull,
            roots: Some(Roots::File(f.path().display().to_string())),
        };
        assert!(s.client_config().unwrap_err().contains("no certificate"));
    }
}
