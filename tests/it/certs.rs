//! Certificates for the TLS tests, made with rcgen: a private CA and a server certificate
//! it issued, and a CA certificate that a server uses as its own (which clients must
//! refuse: a CA certificate does not identify a server).

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// PEM files written into a folder.
pub struct Pki {
    /// The private CA's certificate (what a client's `ca_file` names).
    pub ca: PathBuf,
    /// A server certificate for localhost / 127.0.0.1 issued by that CA, and its key.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A CA certificate (basic constraints CA:TRUE) for localhost / 127.0.0.1, used by a
    /// server as its own certificate, and its key.
    pub ca_as_server_cert: PathBuf,
    pub ca_as_server_key: PathBuf,
}

fn names() -> Vec<String> {
    vec!["localhost".to_string(), "127.0.0.1".to_string()]
}

fn ca_params(cn: &str, sans: Vec<String>) -> CertificateParams {
    let mut p = CertificateParams::new(sans).expect("params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, cn);
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    p
}

/// Make the certificates in `dir`.
pub fn make(dir: &Path) -> Pki {
    fs::create_dir_all(dir).expect("pki dir");
    let ca_key = KeyPair::generate().expect("key");
    let params = ca_params("ai-employee test CA", vec![]);
    let ca_cert = params.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(params, ca_key);

    let server_key = KeyPair::generate().expect("key");
    let mut sp = CertificateParams::new(names()).expect("params");
    sp.distinguished_name.push(DnType::CommonName, "localhost");
    let server_cert = sp.signed_by(&server_key, &issuer).expect("server cert");

    let rogue_key = KeyPair::generate().expect("key");
    let rogue = ca_params("a CA used as a server", names())
        .self_signed(&rogue_key)
        .expect("CA as server");

    let pki = Pki {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        ca_as_server_cert: dir.join("ca-as-server.pem"),
        ca_as_server_key: dir.join("ca-as-server.key"),
    };
    fs::write(&pki.ca, ca_cert.pem()).expect("write");
    fs::write(&pki.server_cert, server_cert.pem()).expect("write");
    fs::write(&pki.server_key, server_key.serialize_pem()).expect("write");
    fs::write(&pki.ca_as_server_cert, rogue.pem()).expect("write");
    fs::write(&pki.ca_as_server_key, rogue_key.serialize_pem()).expect("write");
    pki
}
