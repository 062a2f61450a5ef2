//! The store under the server: data outlives a restart, and outages are 503s.

use dashboard_client::types::ProfileUpdate;
use dashboard_tests::{expect_error, Options, TestServer, TestStore};

/// On the embedded default, the restart reopens the SQLite file; elsewhere, the same tables.
#[tokio::test]
async fn data_survives_a_restart() {
    let store = TestStore::persistent().await;
    let options = Options {
        store: Some(store.clone()),
        hs256_secret: Some(vec![7; 32]),
        ..Default::default()
    };
    let server = TestServer::start_with(options.clone()).await;
    let client = server.member("persistent");
    let etag = client.get_profile().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    // A PUT names every field; null clears.
    let update = ProfileUpdate {
        display_name: Some("Still here".try_into().unwrap()),
        email: None,
        shipping_address: None,
        preferred_wallet: None,
        avatar_url: None,
        dashboard_settings: None,
    };
    let written = client.put_profile(&etag, &update).await.unwrap();
    let etag = written.headers()["etag"].to_str().unwrap().to_string();
    server.stop().await;
    if let Some(dir) = store.data_dir() {
        assert!(dir.join("dynamodb.sqlite").exists());
    }

    let server = TestServer::start_with(options).await;
    let read = server.member("persistent").get_profile().await.unwrap();
    assert_eq!(read.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(read.into_inner().display_name.as_deref(), Some("Still here"));
    server.stop().await;
}

#[tokio::test]
async fn store_outage_is_503_with_retry_advice() {
    let mut server = TestServer::start().await;
    let client = server.member("outage");
    let etag = client.get_profile().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    if !server.stop_store().await {
        return;
    }
    let (status, error) = expect_error(client.get_profile().await);
    assert_eq!(status, 503);
    assert_eq!(error.error_code, "service_unavailable");
    assert!(error.retry_after_seconds.is_some_and(|s| s > 0));
    let update = ProfileUpdate {
        email: None,
        display_name: None,
        shipping_address: None,
        preferred_wallet: None,
        avatar_url: None,
        dashboard_settings: None,
    };
    let (status, _) = expect_error(client.put_profile(&etag, &update).await);
    assert_eq!(status, 503);
    // The server itself stays up.
    server.client_with_headers(Default::default()).get_healthz().await.unwrap();
    server.stop().await;
}
