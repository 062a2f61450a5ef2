//! The embedded store: persistence across restarts, and outages as 503s.

use dashboard_client::types::ProfileUpdate;
use dashboard_tests::{expect_error, Options, TestServer};

#[tokio::test]
async fn data_survives_a_restart_on_the_same_folder() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        data_dir: Some(dir.path().to_owned()),
        hs256_secret: Some(vec![7; 32]),
        ..Default::default()
    };
    let server = TestServer::start_with(options.clone()).await;
    let client = server.member("persistent");
    let etag = client.get_profile().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    let update = ProfileUpdate {
        display_name: Some("Still here".try_into().unwrap()),
        ..Default::default()
    };
    let written = client.put_profile(Some(&etag), &update).await.unwrap();
    let etag = written.headers()["etag"].to_str().unwrap().to_string();
    server.stop().await;
    assert!(dir.path().join("dynamodb.sqlite").exists());

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
    server.stop_store().await;
    let (status, error) = expect_error(client.get_profile().await);
    assert_eq!(status, 503);
    assert_eq!(error.error_code, "service_unavailable");
    assert!(error.retry_after_seconds.is_some_and(|s| s > 0));
    let (status, _) =
        expect_error(client.put_profile(Some(&etag), &ProfileUpdate::default()).await);
    assert_eq!(status, 503);
    // The server itself stays up.
    server.client_with_headers(Default::default()).get_healthz().await.unwrap();
    server.stop().await;
}
