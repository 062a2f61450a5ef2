//! Lambda mode, end to end: the server binary built for Lambda (no embedded store), with the
//! real AWS Lambda Web Adapter (`lambda_web_adapter` from crates.io) in front of it, fed by a
//! minimal Lambda Runtime API on 127.0.0.1. Each function gets the environment that
//! `infra/template.yaml` gives it, with the template's parameters and resources filled in by
//! local stand-ins (DynamoDB: dynoxide; Stripe: the simulator; Secrets Manager, SQS: `aws`).
//!
//! `cargo xtask test` builds both binaries and names them in `DASHBOARD_LAMBDA_BOOTSTRAP` and
//! `DASHBOARD_LAMBDA_ADAPTER`, and runs it although it is `#[ignore]`d.

use dashboard_server::storage::{embedded::EmbeddedStore, Store};
use dashboard_tests::aws::AwsStandIn;
use dashboard_tests::jwks::{JwksServer, SigningKey};
use dashboard_tests::lambda::{trace_id, LambdaRuntime, Outcome};
use serde_json::{json, Value};
use serde_yaml::Value as Yaml;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use stripe_sim::{ItemSpec, StripeSim};

const SECRET_ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dashboard-AbCdEf";
const CLIENT_ID: &str = "e2e-app-client";
const WEBHOOK_SECRET: &str = "whsec_lambda_e2e";
const CURSOR_KEY: &str = "a-cursor-key-of-at-least-32-bytes!!";

fn binary(variable: &str) -> PathBuf {
    let path = std::env::var_os(variable).map(PathBuf::from).unwrap_or_else(|| {
        panic!("{variable} is not set: run this test through `cargo xtask test`, which builds it")
    });
    assert!(path.exists(), "{variable}={} does not exist", path.display());
    path
}

fn template() -> Yaml {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A template value: a plain scalar, or `!Ref X` / `!Sub "..${X}.."` over `names`.
fn resolve(value: &Yaml, names: &BTreeMap<&str, String>) -> String {
    let lookup = |name: &str| {
        names.get(name).cloned().unwrap_or_else(|| panic!("the test has no value for {name}"))
    };
    match value {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Tagged(tagged) if tagged.tag == "!Ref" => lookup(tagged.value.as_str().unwrap()),
        Yaml::Tagged(tagged) if tagged.tag == "!Sub" => {
            let mut text = tagged.value.as_str().expect("!Sub with a string").to_string();
            while let Some(start) = text.find("${") {
                let end = start + text[start..].find('}').unwrap();
                text.replace_range(start..=end, &lookup(&text[start + 2..end]));
            }
            text
        }
        other => panic!("unsupported template value {other:?}"),
    }
}

/// The environment the template gives `function`: `Globals` merged with its own variables.
fn function_environment(
    template: &Yaml,
    function: &str,
    names: &BTreeMap<&str, String>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let function = &template["Resources"][function];
    assert_eq!(function["Type"].as_str(), Some("AWS::Serverless::Function"));
    for variables in [
        &template["Globals"]["Function"]["Environment"]["Variables"],
        &function["Properties"]["Environment"]["Variables"],
    ] {
        for (key, value) in variables.as_mapping().into_iter().flatten() {
            if let Some(value) = pick(value, names) {
                env.insert(key.as_str().unwrap().to_string(), resolve(value, names));
            }
        }
    }
    env
}

/// A variable's value after `!If [Condition, a, b]` (the condition's value, `true` or
/// `false`, is in `names`); `None` for `!Ref AWS::NoValue`: the variable is left out, as
/// CloudFormation leaves it out.
fn pick<'a>(value: &'a Yaml, names: &BTreeMap<&str, String>) -> Option<&'a Yaml> {
    let value = match value {
        Yaml::Tagged(tagged) if tagged.tag == "!If" => {
            let branches = tagged.value.as_sequence().expect("!If [condition, then, else]");
            let condition = branches[0].as_str().expect("a condition name");
            let holds = names.get(condition).map(String::as_str);
            match holds {
                Some("true") => &branches[1],
                Some("false") => &branches[2],
                _ => panic!("the test has no true or false for {condition}"),
            }
        }
        other => other,
    };
    let no_value = matches!(value, Yaml::Tagged(t)
        if t.tag == "!Ref" && t.value.as_str() == Some("AWS::NoValue"));
    (!no_value).then_some(value)
}

/// One Lambda function: its runtime API, the adapter and the server, with their output in files.
struct Function {
    name: &'static str,
    /// Where the server listens (the adapter forwards there).
    address: String,
    runtime: LambdaRuntime,
    processes: Vec<Child>,
    logs: tempfile::TempDir,
}

impl Function {
    fn start(
        name: &'static str,
        runtime: LambdaRuntime,
        env: &BTreeMap<String, String>,
        aws: &BTreeMap<&str, String>,
    ) -> Self {
        let logs = tempfile::tempdir().unwrap();
        // What Lambda itself sets in every function's environment, then the template's.
        let lambda_env = [
            ("AWS_LAMBDA_RUNTIME_API", runtime.address.clone()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.to_string()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/28/[$LATEST]e2e".into()),
        ];
        let spawn = |program: PathBuf, log: &str| {
            let out = std::fs::File::create(logs.path().join(log)).unwrap();
            Command::new(program)
                .env_clear()
                .envs(lambda_env.iter().map(|(k, v)| (*k, v.as_str())))
                .envs(aws.iter().map(|(k, v)| (*k, v.as_str())))
                .envs(env)
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .stdin(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {log}: {e}"))
        };
        // Lambda starts the extension (the adapter's layer) and the runtime (`bootstrap`).
        let adapter = spawn(binary("DASHBOARD_LAMBDA_ADAPTER"), "adapter.log");
        let server = spawn(binary("DASHBOARD_LAMBDA_BOOTSTRAP"), "bootstrap.log");
        let address = env["DASHBOARD_BIND_ADDR"].clone();
        Function { name, address, runtime, processes: vec![adapter, server], logs }
    }

    /// Waits until the adapter has registered and polls for work (after the server is ready).
    async fn ready(&self) {
        let started = std::time::Instant::now();
        // The server's own "listening" record too: the port was free when picked, and the
        // adapter's readiness check would accept any server that took it since.
        let listening = |f: &Self| {
            f.records().iter().any(|r| r["msg"] == "listening" && r["local_addr"] == f.address)
        };
        while self.runtime.extensions() == 0 || self.runtime.polls() == 0 || !listening(self) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{} not ready within 30 s\n{}",
                self.name,
                self.log_tail()
            );
            assert!(self.runtime.init_errors().is_empty(), "{:?}", self.runtime.init_errors());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(self.logs.path().join("bootstrap.log")).unwrap_or_default()
    }

    /// The server's JSON records.
    fn records(&self) -> Vec<Value> {
        self.server_log().lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
    }

    /// The records carrying this trace id, once one of them matches `last` (the logger
    /// writes from its own thread, so a record can land just after the response).
    async fn records_until(&self, last: impl Fn(&Value) -> bool, trace: &str) -> Vec<Value> {
        for _ in 0..1500 {
            let traced: Vec<Value> =
                self.records().into_iter().filter(|r| r["hdr_x_amzn_trace_id"] == trace).collect();
            if traced.iter().any(&last) {
                return traced;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no matching record carries the trace id {trace}\n{}", self.log_tail());
    }

    /// Everything the adapter and the server wrote.
    fn all_logs(&self) -> String {
        ["adapter.log", "bootstrap.log"]
            .map(|file| std::fs::read_to_string(self.logs.path().join(file)).unwrap_or_default())
            .join("\n")
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        for file in ["adapter.log", "bootstrap.log"] {
            let log = std::fs::read_to_string(self.logs.path().join(file)).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            text += &format!("--- {} {file}\n", self.name);
            text += &lines[lines.len().saturating_sub(30)..].join("\n");
            text.push('\n');
        }
        text
    }

    async fn invoke(&self, event: Value) -> Outcome {
        self.runtime.invoke(event).await
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        for process in &mut self.processes {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

/// An API Gateway HTTP API (payload 2.0) event, as the JWT authorizer passes it on.
fn http_event(method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
    let mut event = api_gateway_event(method, path, body.map(|b| b.to_string()));
    event["headers"]["authorization"] = json!(format!("Bearer {token}"));
    event
}

/// An HTTP API event with this raw body and no credentials.
fn api_gateway_event(method: &str, path: &str, body: Option<String>) -> Value {
    let now = chrono::Utc::now();
    let mut event = json!({
        "version": "2.0",
        "routeKey": "ANY /dashboard/{proxy+}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "accept": "application/json",
            "host": "abc123.execute-api.us-east-1.amazonaws.com",
            "user-agent": "lambda-e2e",
            "x-forwarded-for": "203.0.113.7",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "authorizer": { "jwt": { "claims": { "sub": "from-the-authorizer" }, "scopes": null } },
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "lambda-e2e",
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": "ANY /dashboard/{proxy+}",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": false,
    });
    if let Some(body) = body {
        event["headers"]["content-type"] = json!("application/json");
        event["body"] = json!(body);
    }
    event
}

/// The HTTP response inside an API Gateway answer: status and JSON body.
fn http_answer(outcome: Outcome) -> (u16, Value, Value) {
    let Outcome::Response(answer) = outcome else {
        panic!("an HTTP event is always answered, got {outcome:?}");
    };
    let status = answer["statusCode"].as_u64().expect("statusCode") as u16;
    let body = answer["body"].as_str().map(|b| serde_json::from_str(b).unwrap_or(json!(b)));
    (status, body.unwrap_or(Value::Null), answer["headers"].clone())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Lambda artifact and the adapter: run by `cargo xtask test`"]
async fn lambda_mode_serves_http_events_the_schedule_and_the_refresh_queue() {
    // What the template's parameters and resources stand for, here.
    let store = EmbeddedStore::start(None).await.unwrap();
    let stripe = StripeSim::start().await;
    let secrets = AwsStandIn::secrets_manager(
        SECRET_ARN,
        json!({
            "stripeSecretKey": stripe.secret_key(),
            "stripeWebhookSecret": WEBHOOK_SECRET,
            "cursorKey": CURSOR_KEY,
        }),
    )
    .await;
    let sqs = AwsStandIn::sqs().await;
    let queue_url = format!("{}/123456789012/e2e-dashboard-refresh", sqs.url);
    let key = SigningKey::generate("cognito-key-1");
    let jwks = JwksServer::start(&[&key]).await;
    let issuer = jwks.url.trim_end_matches("/.well-known/jwks.json").to_string();

    let template = template();
    let names = BTreeMap::from([
        ("Stage", "e2e".to_string()),
        ("CognitoIssuer", issuer.clone()),
        ("CognitoAppClientId", CLIENT_ID.to_string()),
        ("AdminScope", template["Parameters"]["AdminScope"]["Default"].as_str().unwrap().into()),
        ("AdminGroup", template["Parameters"]["AdminGroup"]["Default"].as_str().unwrap().into()),
        // The template's default: no operator client.
        ("AdminClientId", String::new()),
        ("HasAdminClient", "false".to_string()),
        ("StripeSecretArn", SECRET_ARN.to_string()),
        ("RefreshQueue", queue_url.clone()),
        (
            "StripeMaxRps",
            template["Parameters"]["StripeMaxRps"]["Default"].as_u64().unwrap().to_string(),
        ),
    ]);
    // CloudFormation creates the tables; here the server's own definitions do (a unit test
    // checks they are the template's).
    let prefix = resolve(
        &template["Globals"]["Function"]["Environment"]["Variables"]["DASHBOARD_TABLE_PREFIX"],
        &names,
    );
    Store::connect("us-east-1", Some(&store.endpoint), &prefix)
        .await
        .ensure_tables(&prefix)
        .await
        .unwrap();
    // Lambda's credentials, and the service endpoints pointed at the stand-ins.
    let aws = BTreeMap::from([
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_string()),
        ("AWS_ACCESS_KEY_ID", "ASIAE2ETEST".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "e2e-secret".to_string()),
        ("AWS_SESSION_TOKEN", "e2e-session".to_string()),
        ("AWS_ENDPOINT_URL_DYNAMODB", store.endpoint.clone()),
        ("AWS_ENDPOINT_URL_SQS", sqs.url.clone()),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", secrets.url.clone()),
        ("STRIPE_API_BASE", stripe.url().to_string()),
    ]);

    let mut functions = Vec::new();
    for name in ["ApiFunction", "WorkerFunction"] {
        let mut env = function_environment(&template, name, &names);
        // The template's port, moved to a free one so tests can run side by side.
        let port = env["AWS_LWA_PORT"].clone();
        assert_eq!(env["DASHBOARD_BIND_ADDR"], format!("127.0.0.1:{port}"));
        let port = free_port().to_string();
        env.insert("DASHBOARD_BIND_ADDR".into(), format!("127.0.0.1:{port}"));
        env.insert("AWS_LWA_PORT".into(), port);
        let runtime = LambdaRuntime::start().await;
        functions.push(Function::start(name, runtime, &env, &aws));
    }
    let worker = functions.pop().unwrap();
    let api = functions.pop().unwrap();
    api.ready().await;
    worker.ready().await;

    let now = chrono::Utc::now().timestamp();
    let member_claims = json!({
        "sub": "lambda-member", "iss": issuer, "client_id": CLIENT_ID, "token_use": "access",
        "iat": now, "exp": now + 600, "email": "lambda@example.com",
    });
    let member = key.sign(Some(&key.kid), &member_claims);
    let mut admin_claims = member_claims.clone();
    admin_claims["sub"] = json!("lambda-admin");
    // Admin is the template's admin group (a member's scope grants nothing).
    admin_claims["cognito:groups"] = json!([template["Parameters"]["AdminGroup"]["Default"]]);
    let admin = key.sign(Some(&key.kid), &admin_claims);

    // An HTTP API event: the profile, created on first read, with its ETag.
    let trace = trace_id();
    let outcome = api
        .runtime
        .invoke_traced(http_event("GET", "/dashboard/profile", &member, None), &trace)
        .await;
    let (status, profile, headers) = http_answer(outcome);
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["userId"], "lambda-member");
    assert_eq!(profile["email"], "lambda@example.com");
    assert!(headers["etag"].is_string(), "{headers}");
    // The X-Ray trace id reaches the request's log records.
    let traced = api.records_until(|r| r["msg"] == "request completed", &trace).await;
    assert!(traced.iter().all(|r| r["req_id"].is_string()), "{traced:?}");
    // An unauthenticated call is answered by the server's uniform 401.
    let (status, body, _) =
        http_answer(api.invoke(http_event("GET", "/dashboard/profile", "x.y.z", None)).await);
    assert_eq!((status, body["error_code"].as_str()), (401, Some("unauthorized")));

    // The admin links the member's Stripe customer; the member's first listing is stale, so
    // its refresh goes to the queue (Lambda freezes after the response).
    let customer = stripe.create_customer("lambda@example.com");
    let pi =
        stripe.create_payment_intent(&customer, 2500, "eur", &[ItemSpec::new("Ring", 1, 2500)]);
    stripe.succeed(&pi);
    let link = json!({ "stripeCustomerId": customer });
    let path = "/internal/members/lambda-member/stripe-customer";
    let (status, body, _) =
        http_answer(api.invoke(http_event("PUT", path, &admin, Some(link))).await);
    assert_eq!(status, 200, "{body}");
    let (status, page, _) =
        http_answer(api.invoke(http_event("GET", "/dashboard/orders", &member, None)).await);
    assert_eq!(status, 200, "{page}");
    assert_eq!((page["stale"].as_bool(), page["refreshing"].as_bool()), (Some(true), Some(true)));
    assert_eq!(page["items"], json!([]));
    let sent = sqs.calls();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].request["QueueUrl"], queue_url.as_str());
    let message = sent[0].request["MessageBody"].as_str().unwrap().to_string();

    // An HTTP client cannot reach the pass-through path, even claiming a null request context:
    // the adapter sets the header from the real one.
    let mut forged = http_event("POST", "/events", &member, Some(json!({ "Records": [] })));
    forged["headers"]["x-amzn-request-context"] = json!("null");
    let (status, _, _) = http_answer(api.invoke(forged).await);
    assert_eq!(status, 404);
    // Nor can anything that reaches the server's port without the adapter: under Lambda the
    // path exists (`AWS_LAMBDA_RUNTIME_API` is set), but only for the adapter's `null` request
    // context; without it the schedule is an unknown path and runs nothing.
    let events_url = format!("http://{}/events", worker.address);
    let direct = reqwest::Client::new();
    let schedule_event = json!({ "source": "aws.scheduler", "detail-type": "Scheduled Event" });
    let response = direct.post(&events_url).json(&schedule_event).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 404, "no request context");
    let response = direct
        .post(&events_url)
        .header("x-amzn-request-context", "null")
        .json(&json!({ "hello": "world" }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!((status, body["error_code"].as_str()), (400, Some("unknown_event")), "{body}");
    // The API function has no such path at all (the template switches it off there).
    let api_events = format!("http://{}/events", api.address);
    let response = direct
        .post(&api_events)
        .header("x-amzn-request-context", "null")
        .json(&schedule_event)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404, "the API function serves no events");

    // The worker gets the queued refresh in an SQS batch with one bad record: only the bad
    // one is reported, so SQS retries it (and dead-letters it), not the good one.
    let batch = json!({ "Records": [
        sqs_record("m-good", &message),
        sqs_record("m-bad", "not json"),
    ]});
    assert_eq!(
        worker.invoke(batch).await,
        Outcome::Response(json!({ "batchItemFailures": [{ "itemIdentifier": "m-bad" }] }))
    );
    let (_, page, _) =
        http_answer(api.invoke(http_event("GET", "/dashboard/orders", &member, None)).await);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page["items"][0]["amount"], 2500);
    assert_eq!(page["items"][0]["currency"], "EUR");

    // A Stripe webhook through API Gateway: the signature (with the secret from Secrets
    // Manager) still matches the body after the adapter; a tampered one is refused.
    let pi = stripe.create_payment_intent(&customer, 1200, "eur", &[ItemSpec::new("Pin", 1, 1200)]);
    stripe.succeed(&pi);
    let event = stripe.events().into_iter().rev().find(|e| e["type"] == "payment_intent.succeeded");
    let event = event.expect("the simulator emitted payment_intent.succeeded");
    let body = event.to_string();
    let signed_at = chrono::Utc::now().timestamp();
    let signature = stripe_sim::signature_header(WEBHOOK_SECRET, signed_at, &body);
    let mut delivery = api_gateway_event("POST", "/webhooks/stripe", Some(body));
    delivery["headers"]["stripe-signature"] = json!(signature);
    let mut tampered = delivery.clone();
    tampered["headers"]["stripe-signature"] = json!(signature.replace("v1=", "v1=00"));
    let (status, answer, _) = http_answer(api.invoke(tampered).await);
    assert_eq!((status, answer["error_code"].as_str()), (400, Some("invalid_signature")));
    let (status, answer, _) = http_answer(api.invoke(delivery).await);
    assert_eq!(status, 200, "{answer}");
    let (_, page, _) =
        http_answer(api.invoke(http_event("GET", "/dashboard/orders", &member, None)).await);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2), "{page}");

    // The schedule's event, exactly as the template's schedule sends it.
    let schedule =
        &template["Resources"]["WorkerFunction"]["Properties"]["Events"]["DailyReconcile"];
    let input: Value =
        serde_json::from_str(schedule["Properties"]["Input"].as_str().unwrap()).unwrap();
    let Outcome::Response(report) = worker.invoke(input.clone()).await else {
        panic!("the schedule ran\n{}", worker.log_tail());
    };
    assert_eq!(
        (report["members"].as_u64(), report["failed"].as_u64()),
        (Some(1), Some(0)),
        "{report}"
    );

    // Secrets were read once per function, at cold start; metrics are EMF records.
    let reads = secrets.calls();
    assert_eq!(reads.len(), 2, "one GetSecretValue per function: {reads:?}");
    assert!(reads.iter().all(|c| c.target == "secretsmanager.GetSecretValue"));
    for function in [&api, &worker] {
        assert!(function.records().iter().any(|r| r["_aws"]["CloudWatchMetrics"].is_array()));
    }

    // The worker refuses an event it does not know with a 4xx, which the adapter reports as an
    // invocation error (AWS_LWA_ERROR_STATUS_CODES): retried, then dead-lettered, not dropped.
    match worker.invoke(json!({ "hello": "world" })).await {
        Outcome::Error(error) => assert!(error.to_string().contains("400"), "{error}"),
        other => panic!("expected an invocation error, got {other:?}"),
    }

    // With the store down the schedule fails, and the adapter reports the 5xx as an
    // invocation error, so Lambda retries it and then sends it to the failure destination.
    tokio::time::timeout(Duration::from_secs(30), store.shutdown()).await.expect("the store stops");
    match worker.invoke(input).await {
        Outcome::Error(error) => assert!(error.to_string().contains("503"), "{error}"),
        other => panic!("expected an invocation error, got {other:?}"),
    }
    // A batch whose records all fail reports them all: none is deleted from the queue.
    let batch = json!({ "Records": [sqs_record("m-retry", &message)] });
    assert_eq!(
        worker.invoke(batch).await,
        Outcome::Response(json!({ "batchItemFailures": [{ "itemIdentifier": "m-retry" }] }))
    );
    // The API function answers HTTP errors itself: API Gateway gets the 503 and its body.
    let (status, body, _) =
        http_answer(api.invoke(http_event("GET", "/dashboard/profile", &member, None)).await);
    assert_eq!((status, body["error_code"].as_str()), (503, Some("service_unavailable")));
    assert!(body["retry_after_seconds"].as_u64().is_some(), "{body}");

    // Nothing secret reached any log, error paths included.
    let signature_mac = signature.rsplit("v1=").next().unwrap().to_string();
    let secrets = [
        ("the Stripe key", stripe.secret_key().to_string()),
        ("the webhook secret", WEBHOOK_SECRET.to_string()),
        ("the cursor key", CURSOR_KEY.to_string()),
        ("a member token", member.clone()),
        ("an admin token", admin.clone()),
        ("a webhook signature", signature_mac),
    ];
    for function in [&api, &worker] {
        let logs = function.all_logs();
        for (what, value) in &secrets {
            assert!(!logs.contains(value.as_str()), "{what} reached {}'s logs", function.name);
        }
    }
}

fn sqs_record(id: &str, body: &str) -> Value {
    json!({
        "messageId": id,
        "receiptHandle": format!("handle-{id}"),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": chrono::Utc::now().timestamp_millis().to_string(),
            "SenderId": "AROAE2E",
            "ApproximateFirstReceiveTimestamp": chrono::Utc::now().timestamp_millis().to_string(),
        },
        "messageAttributes": {},
        "md5OfBody": format!("{:x}", md5::compute(body.as_bytes())),
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:e2e-dashboard-refresh",
        "awsRegion": "us-east-1",
    })
}
