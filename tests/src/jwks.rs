//! An RS256 issuer for tests: RSA keys and a JWKS endpoint on 127.0.0.1 that counts its hits,
//! can rotate keys, and can fail on purpose.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// An RSA signing key with its `kid`.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub private_pem: String,
    pub public_pem: String,
    pub jwk: Value,
}

impl SigningKey {
    pub fn generate(kid: &str) -> Self {
        let mut rng = rand::thread_rng();
        let key = RsaPrivateKey::new(&mut rng, 2048).expect("RSA key generation");
        let public = key.to_public_key();
        let private_pem = key.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap().to_string();
        let public_pem =
            rsa::pkcs8::EncodePublicKey::to_public_key_pem(&public, rsa::pkcs8::LineEnding::LF)
                .unwrap();
        let jwk = json!({
            "kty": "RSA",
            "kid": kid,
            "use": "sig",
            "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        });
        SigningKey { kid: kid.to_string(), private_pem, public_pem, jwk }
    }

    /// An RS256 token signed by this key, with header `kid` = `kid`.
    pub fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = kid.map(str::to_string);
        jsonwebtoken::encode(
            &header,
            claims,
            &jsonwebtoken::EncodingKey::from_rsa_pem(self.private_pem.as_bytes()).unwrap(),
        )
        .unwrap()
    }
}

/// A JWKS endpoint serving whatever keys it currently holds.
pub struct JwksServer {
    pub url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    hits: Arc<AtomicUsize>,
    /// Requests still to answer with a 500 before serving again.
    failures: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub async fn start(keys: &[&SigningKey]) -> Self {
        let keys = Arc::new(Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()));
        let hits = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(AtomicUsize::new(0));
        let (served, counter, failing) = (keys.clone(), hits.clone(), failures.clone());
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let (served, counter, failing) = (served.clone(), counter.clone(), failing.clone());
                async move {
                    use axum::response::IntoResponse;
                    counter.fetch_add(1, Ordering::SeqCst);
                    let fail = failing
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    if fail {
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
                    }
                    let keys = served.lock().unwrap().clone();
                    axum::Json(json!({ "keys": keys })).into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        JwksServer { url, keys, hits, failures, task }
    }

    /// Answer the next `n` requests with a 500, then serve the keys again.
    pub fn fail_next(&self, n: usize) {
        self.failures.store(n, Ordering::SeqCst);
    }

    /// Serve exactly these keys from now on.
    pub fn rotate_to(&self, keys: &[&SigningKey]) {
        *self.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
