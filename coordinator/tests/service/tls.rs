//! TLS through tonic's rustls: a server certificate from a CA made in the test (rcgen),
//! clients that trust the CA, and mutual TLS with a client certificate.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use sweep_proto as pb;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "sweep test ca");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca, &ca_key);
    let issue = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names).unwrap().signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki { ca_pem: ca_cert.pem(), server: issue(vec!["localhost".into()]), client: issue(vec!["worker-1".into()]) }
}

async fn list(channel: Channel, token: &str) -> Result<usize, tonic::Status> {
    let mut c = pb::client_service_client::ClientServiceClient::new(channel);
    Ok(c.list_sweeps(sweep_testkit::app::with_token(token, pb::ListSweepsRequest {})).await?.into_inner().sweeps.len())
}

#[tokio::test]
async fn tls_and_mutual_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(url) = sweep_testkit::fresh_database().await else { return };
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let mut s = sweep_testkit::app::settings(&url);
    s.tls_cert = Some(write("server.pem", &pki.server.0));
    s.tls_key = Some(write("server.key", &pki.server.1));
    s.tls_client_ca = Some(write("ca.pem", &pki.ca_pem));
    let app = sweep_coordinator::Coordinator::build(s).await.unwrap();
    let (addr, db) = (app.addr, app.state.db.clone());
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(app.run(shutdown.clone()));
    let (_, admin) =
        sweep_coordinator::db::tokens::create(&db, sweep_coordinator::db::tokens::Role::Admin, "t").await.unwrap();
    let endpoint = || Channel::from_shared(format!("https://localhost:{}", addr.port())).unwrap();
    let ca = Certificate::from_pem(&pki.ca_pem);

    // With the CA and a client certificate: served.
    let tls = ClientTlsConfig::new()
        .ca_certificate(ca.clone())
        .domain_name("localhost")
        .identity(Identity::from_pem(&pki.client.0, &pki.client.1));
    let ch = endpoint().tls_config(tls).unwrap().connect().await.expect("mutual TLS connects");
    assert_eq!(list(ch, &admin).await.unwrap(), 0);

    // Without a client certificate the server requires: refused.
    let no_id = ClientTlsConfig::new().ca_certificate(ca.clone()).domain_name("localhost");
    let refused = match endpoint().tls_config(no_id).unwrap().connect().await {
        Err(_) => true,
        Ok(ch) => list(ch, &admin).await.is_err(),
    };
    assert!(refused, "a client without a certificate must not be served");

    // Plain HTTP to a TLS port: refused.
    let plain = Channel::from_shared(format!("http://127.0.0.1:{}", addr.port())).unwrap();
    let refused = match plain.connect().await {
        Err(_) => true,
        Ok(ch) => list(ch, &admin).await.is_err(),
    };
    assert!(refused);
    shutdown.cancel();
}
