//! The operator's CLI (`dashboard-server admin|reconcile|doctor`), run as the real binary
//! against a real server's tables and the Stripe simulator; what it did is checked through the
//! generated client. The harness (tables behind an endpoint the binary can reach, the binary
//! itself) is `dashboard_tests::cli`.

use dashboard_client::types::{LinkStripeCustomer, SyncRequest};
use dashboard_client::Client;
use dashboard_tests::cli::{binary, Setup};
use dashboard_tests::jwks::{JwksServer, SigningKey};
use serde_json::Value;
use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;
use stripe_sim::Faults;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Every order id the member can list.
async fn listed(client: &Client) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut token: Option<String> = None;
    loop {
        let page = client.list_orders(None, None, None, token.as_deref(), None).await;
        let page = page.unwrap().into_inner();
        ids.extend(page.items.into_iter().map(|o| o.order_id));
        match page.next_page {
            Some(next) => token = Some(next),
            None => return ids,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_link_show_member_and_unlink_round_trip() {
    let Some(setup) = Setup::start().await else { return };
    let member = setup.member("cli-member");
    member.get_profile().await.unwrap();
    let customer = setup.stripe.create_customer("cli-member@example.com");
    for _ in 0..3 {
        let pi = setup.stripe.create_payment_intent(&customer, 1500, "usd", &[]);
        setup.stripe.succeed(&pi);
    }

    let link =
        setup.run(&["admin", "link", "--user-id", "cli-member", "--customer", &customer]).await;
    assert_eq!(link.code, 0, "{}", link.stderr);
    assert_eq!(link.json()["stripeCustomerId"], customer.as_str());
    let audit = link.audit();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["user_id"], "cli:tester");
    assert_eq!(audit[0]["action"], "put_member_stripe_customer");
    assert_eq!(audit[0]["target_user_id"], "cli-member");
    assert_eq!(audit[0]["stripe_customer_id"], customer.as_str());
    assert_eq!(audit[0]["outcome"], "ok");
    let status = member.get_sync_status().await.unwrap().into_inner();
    assert_eq!(status.stripe_customer_id.as_deref(), Some(customer.as_str()));

    let sync = setup.run(&["reconcile", "--user-id", "cli-member"]).await;
    assert_eq!(sync.code, 0, "{}", sync.stderr);
    assert_eq!(sync.json()["created"], 3);
    assert_eq!(listed(&member).await.len(), 3);

    let show = setup.run(&["admin", "show-member", "--user-id", "cli-member"]).await;
    assert_eq!(show.code, 0, "{}", show.stderr);
    let shown = show.json();
    assert_eq!(shown["userId"], "cli-member");
    assert_eq!(shown["stripeCustomerId"], customer.as_str());
    assert_eq!(shown["orderCount"], 3);
    assert_eq!(shown["syncStatus"]["lastReconcile"]["created"], 3);
    assert_eq!(show.audit()[0]["action"], "show_member");

    // A customer another member holds is refused, as by the API.
    setup.member("other").get_profile().await.unwrap();
    let taken = setup.run(&["admin", "link", "--user-id", "other", "--customer", &customer]).await;
    assert_eq!(taken.code, 1);
    assert!(taken.stderr.contains("already linked"), "{}", taken.stderr);
    assert_eq!(taken.audit()[0]["outcome"], "failed");

    let unlink = setup.run(&["admin", "unlink", "--user-id", "cli-member"]).await;
    assert_eq!(unlink.code, 0, "{}", unlink.stderr);
    assert_eq!(unlink.json()["unlinkedCustomer"], customer.as_str());
    assert_eq!(unlink.json()["ordersDeleted"], 3);
    assert_eq!(unlink.audit()[0]["action"], "unlink_member_stripe_customer");
    assert_eq!(unlink.audit()[0]["stripe_customer_id"], customer.as_str());
    let status = member.get_sync_status().await.unwrap().into_inner();
    assert_eq!(status.stripe_customer_id, None);
    assert!(listed(&member).await.is_empty(), "the cached orders are gone");
    assert_eq!(member.get_profile().await.unwrap().into_inner().total_orders, 0);

    // The claim went with the link: the customer can be linked to someone else now.
    let body = LinkStripeCustomer { stripe_customer_id: customer.parse().unwrap() };
    setup.admin().put_member_stripe_customer(&"other".parse().unwrap(), &body).await.unwrap();
    // Unlinking again changes nothing and is no error.
    let again = setup.run(&["admin", "unlink", "--user-id", "cli-member"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.json()["unlinkedCustomer"], Value::Null);

    let missing = setup.run(&["admin", "show-member", "--user-id", "nobody"]).await;
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("member not found"), "{}", missing.stderr);
    let invalid = setup.run(&["admin", "link", "--user-id", "x", "--customer", "nope"]).await;
    assert_eq!(invalid.code, 2, "a bad customer id is refused before anything starts");
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_all_prints_json_lines_and_resumes_after_ctrl_c() {
    let Some(setup) = Setup::start().await else { return };
    let members: Vec<String> = (0..10).map(|i| format!("sweep-{i:02}")).collect();
    for user in &members {
        setup.linked_member(user, 2).await;
    }
    // Slow Stripe down so the sweep is still running when it is interrupted.
    setup.stripe.inject(Faults { latency: Duration::from_millis(150), ..Faults::default() });
    let state = setup.dir.path().join("sweep-state.json");
    let state_arg = state.display().to_string();
    let mut command = setup.command(&["reconcile", "--all", "--state-file", &state_arg]);
    command.env("DASHBOARD_SYNC_CONCURRENCY", "2");
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("a member line within a minute")
        .unwrap()
        .expect("a line");
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["type"], "member");
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(killed.success());
    let mut printed = vec![first];
    while let Some(line) = lines.next_line().await.unwrap() {
        printed.push(serde_json::from_str(&line).unwrap());
    }
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), Some(130), "interrupted: {printed:?}");
    let summary = printed.pop().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["interrupted"], true);
    let first_run: Vec<String> =
        printed.iter().map(|l| l["userId"].as_str().unwrap().to_string()).collect();
    assert!(printed.iter().all(|l| l["type"] == "member" && l["ok"] == true), "{printed:?}");
    assert!(first_run.len() < members.len(), "stopped early: {first_run:?}");
    assert_eq!(summary["members"], first_run.len());
    assert!(state.exists(), "the resume point is kept");

    setup.stripe.inject(Faults::default());
    let resumed = setup.run(&["reconcile", "--all", "--resume", "--state-file", &state_arg]).await;
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let mut printed = resumed.lines();
    let summary = printed.pop().unwrap();
    let second_run: Vec<String> =
        printed.iter().map(|l| l["userId"].as_str().unwrap().to_string()).collect();
    let mut all: Vec<String> = first_run.iter().chain(&second_run).cloned().collect();
    all.sort();
    assert_eq!(all, members, "each member once over the two runs");
    assert_eq!(summary["interrupted"], false);
    assert_eq!(summary["members"], members.len(), "totals carry over: {summary}");
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["totals"]["created"], 2 * members.len());
    assert!(!state.exists(), "a finished sweep leaves no resume point");
    for user in &members {
        assert_eq!(listed(&setup.member(user)).await.len(), 2, "{user}");
    }
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_all_shows_a_progress_bar_on_a_terminal() {
    let Some(setup) = Setup::start().await else { return };
    for i in 0..3 {
        setup.linked_member(&format!("bar-{i}"), 1).await;
    }
    // `script` (util-linux) runs the command on a pseudo-terminal and copies what it printed.
    // A pseudo-terminal without a parent terminal has no width, and a bar of no width is
    // drawn as nothing: give it one.
    let inner = format!("stty cols 120 rows 40; {} reconcile --all", binary().display());
    let mut command = setup.command(&[]);
    let command = command.as_std_mut();
    let mut script = Command::new("script");
    script.args(["-qec", &inner, "/dev/null"]);
    script.env_clear().envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))));
    // console (under indicatif) draws nothing on a terminal without `TERM`.
    script.env("TERM", "xterm");
    script.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let run = setup.run_command(script).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("3/3 members"), "{}", run.stdout);
    assert!(run.stdout.contains("Stripe requests"), "{}", run.stdout);
    assert!(run.stdout.contains("ETA"), "{}", run.stdout);
    // No per-member JSON lines on a terminal; the summary still ends the output.
    assert!(!run.stdout.contains("\"type\":\"member\""), "{}", run.stdout);
    assert!(run.stdout.contains("\"type\":\"summary\""), "{}", run.stdout);
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_a_good_configuration_and_names_each_failure() {
    let Some(setup) = Setup::start().await else { return };
    let key = SigningKey::generate("kid-1");
    let jwks = JwksServer::start(&[&key]).await;

    let mut good = setup.command(&["doctor"]);
    good.env("DASHBOARD_JWKS_URL", &jwks.url);
    let run = setup.run_command(good).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines.iter().all(|l| l.starts_with("ok ")), "{}", run.stdout);
    for table in ["UserProfiles", "OrderSnapshots", "StripeEvents", "StripeCustomers"] {
        let name = format!("table {}{table}:", setup.prefix);
        assert!(run.stdout.contains(&name), "{name}: {}", run.stdout);
    }
    assert!(run.stdout.contains("TTL expiresAt"), "{}", run.stdout);
    assert!(run.stdout.contains("1 RS256 key"), "{}", run.stdout);
    assert!(run.stdout.contains("ok   stripe: sk_test accepted"), "{}", run.stdout);
    assert!(run.stdout.contains("ok   webhook secret"), "{}", run.stdout);

    // A JWKS nobody serves, a key Stripe refuses, a webhook secret of the wrong shape and a
    // missing table: each its own FAIL line.
    let store = dashboard_server::storage::Store::connect(
        "us-east-1",
        Some(&setup.endpoint),
        &setup.prefix,
    )
    .await;
    let table = format!("{}OrderSnapshots", setup.prefix);
    store.client.delete_table().table_name(&table).send().await.unwrap();
    let mut bad = setup.command(&["doctor"]);
    bad.env("DASHBOARD_JWKS_URL", "http://127.0.0.1:9/.well-known/jwks.json")
        .env("STRIPE_SECRET_KEY", "sk_test_wrong-key-0123456789")
        .env("STRIPE_WEBHOOK_SECRET", "not-a-webhook-secret");
    let run = setup.run_command(bad).await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    for expected in [
        format!("FAIL table {table}: missing"),
        "FAIL jwks: http://127.0.0.1:9/.well-known/jwks.json: unreachable".to_string(),
        "FAIL stripe: sk_test: key refused (401)".to_string(),
        "FAIL webhook secret".to_string(),
    ] {
        assert!(run.stdout.contains(&expected), "{expected}: {}", run.stdout);
    }
    let profiles = format!("ok   table {}UserProfiles", setup.prefix);
    assert!(run.stdout.contains(&profiles), "{}", run.stdout);
    // No secret is printed, whatever failed.
    let all = format!("{}{}", run.stdout, run.stderr);
    for secret in
        ["wrong-key-0123456789", "not-a-webhook-secret", "cli-test-hs256", "cli-test-cursor"]
    {
        assert!(!all.contains(secret), "{secret} printed: {all}");
    }
    setup.stop().await;
}

/// Caches the member's orders now, through the admin reconcile.
async fn sync(setup: &Setup, user: &str) -> u64 {
    let body = SyncRequest { user_id: user.parse().unwrap() };
    setup.admin().post_sync_member(&body).await.unwrap().into_inner().created
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_export_prints_every_page_as_the_member_reads_it() {
    let Some(setup) = Setup::start().await else { return };
    // More than one export page (100 orders a page).
    let customer = setup.linked_member("cli-exporter", 130).await;
    let refunded = setup.stripe.create_payment_intent(&customer, 4200, "usd", &[]);
    setup.stripe.succeed(&refunded);
    setup.stripe.refund(&refunded, 1200);
    sync(&setup, "cli-exporter").await;
    let member = setup.member("cli-exporter");
    let mut api_ids = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = member.get_export(token.as_deref()).await.unwrap().into_inner();
        api_ids.extend(page.orders.into_iter().map(|o| o.order_id));
        pages += 1;
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert!(pages > 1, "the API pages this export");

    let run = setup.run(&["admin", "export", "--user-id", "cli-exporter"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let export = run.json();
    assert_eq!(export["profile"]["userId"], "cli-exporter");
    assert_eq!(export["profile"]["stripeCustomerId"], customer.as_str());
    assert_eq!(export["syncStatus"]["stripeCustomerId"], customer.as_str());
    assert!(export["auditHistory"].as_str().unwrap().contains("logs"), "{export}");
    assert!(export.get("nextPageToken").is_none(), "one document, no page token");
    let orders = export["orders"].as_array().unwrap();
    let ids: Vec<String> = orders.iter().map(|o| o["orderId"].as_str().unwrap().into()).collect();
    assert_eq!(ids.len(), 131);
    assert_eq!(ids, api_ids, "the same orders in the same order as the API's pages");
    let order = orders.iter().find(|o| o["orderId"] == refunded.as_str()).unwrap();
    assert_eq!(order["amountRefunded"], 1200, "with its timeline");
    assert_eq!(order["refunds"].as_array().unwrap().len(), 1);
    let audit = run.audit();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["user_id"], "cli:tester");
    assert_eq!(audit[0]["action"], "export_member");
    assert_eq!(audit[0]["target_user_id"], "cli-exporter");
    assert_eq!(audit[0]["outcome"], "ok");

    let missing = setup.run(&["admin", "export", "--user-id", "nobody"]).await;
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("member not found"), "{}", missing.stderr);
    assert_eq!(missing.audit()[0]["outcome"], "failed");
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_erase_removes_the_member_and_completes_an_interrupted_erasure() {
    let Some(setup) = Setup::start().await else { return };
    let customer = setup.linked_member("cli-erased", 3).await;
    sync(&setup, "cli-erased").await;
    let member = setup.member("cli-erased");
    assert_eq!(listed(&member).await.len(), 3);

    // Without --yes: what would go, and nothing erased.
    let run = setup.run(&["admin", "erase", "--user-id", "cli-erased"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("add --yes"), "{}", run.stderr);
    assert_eq!(run.json()["orderCount"], 3);
    assert_eq!(listed(&member).await.len(), 3, "nothing erased");

    let run = setup.run(&["admin", "erase", "--user-id", "cli-erased", "--yes"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["resumed"], false);
    assert_eq!(report["profilesRemoved"], 1);
    assert_eq!(report["ordersRemoved"], 3);
    assert_eq!(report["customerLinksRemoved"], 1);
    assert!(report["retained"].as_str().unwrap().contains("Stripe's own records"), "{report}");
    // The member's own records, as the API writes them, and the operator's.
    let audit = run.audit();
    let actions: Vec<&str> = audit.iter().filter_map(|r| r["action"].as_str()).collect();
    assert_eq!(actions, ["profile.erase.start", "profile.erase", "erase_member"], "{audit:?}");
    assert!(audit[..2].iter().all(|r| r["user_id"] == "cli-erased"), "{audit:?}");
    assert_eq!(audit[2]["user_id"], "cli:tester");
    assert_eq!(audit[2]["target_user_id"], "cli-erased");
    assert_eq!(audit[2]["outcome"], "ok");

    // A later sign-in starts a fresh profile with nothing of the old one.
    let fresh = member.get_profile().await.unwrap().into_inner();
    assert_eq!((fresh.total_orders, fresh.stripe_customer_id), (0, None));
    assert!(listed(&member).await.is_empty());
    // Stripe's records are untouched and the customer is free: another member gets its orders.
    let body = LinkStripeCustomer { stripe_customer_id: customer.parse().unwrap() };
    setup.member("heir").get_profile().await.unwrap();
    setup.admin().put_member_stripe_customer(&"heir".parse().unwrap(), &body).await.unwrap();
    sync(&setup, "heir").await;
    assert_eq!(listed(&setup.member("heir")).await.len(), 3);

    // An erasure interrupted after its first step (the profile marked, the link gone) is
    // completed by running the command again, with no version to confirm.
    setup.linked_member("cli-halfway", 2).await;
    sync(&setup, "cli-halfway").await;
    let store = dashboard_server::storage::Store::connect(
        "us-east-1",
        Some(&setup.endpoint),
        &setup.prefix,
    )
    .await;
    let profile = store.get_profile("cli-halfway").await.unwrap().unwrap();
    store.mark_erasing(&profile, chrono::Utc::now()).await.unwrap();
    let halfway = setup.member("cli-halfway");
    assert!(listed(&halfway).await.is_empty(), "nothing half-visible meanwhile");
    let run = setup.run(&["admin", "erase", "--user-id", "cli-halfway", "--yes"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    assert_eq!(
        (report["resumed"].as_bool(), report["ordersRemoved"].as_u64()),
        (Some(true), Some(2))
    );
    assert!(store.get_profile_any("cli-halfway").await.unwrap().is_none(), "the profile is gone");

    let missing = setup.run(&["admin", "erase", "--user-id", "cli-halfway", "--yes"]).await;
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("member not found"), "{}", missing.stderr);
    assert_eq!(missing.audit().last().unwrap()["outcome"], "failed");
    setup.stop().await;
}
