//! Rules of `infra/template.yaml` that neither cfn-lint nor `sam validate` knows (those two run
//! in `cargo xtask test`, `test::infra_checks`): what a deployment must do for the API's trust
//! boundaries. Tests only; `server/src/storage/iam.rs` holds the functions' IAM statements to
//! the calls their code makes, and `server/src/storage/schema.rs` the tables to the server's.
//!
//! Imports only `repo_root()`.

#[cfg(test)]
mod tests {
    use serde_yaml::Value;

    fn template() -> Value {
        let path = crate::repo_root().join("infra/template.yaml");
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn resource<'a>(template: &'a Value, logical_id: &str) -> &'a Value {
        let resource = &template["Resources"][logical_id];
        assert!(resource.is_mapping(), "the template has no resource {logical_id}");
        resource
    }

    /// The logical id a `!Ref X` (or `!GetAtt X.Arn`) names.
    fn target(value: &Value) -> Option<&str> {
        let Value::Tagged(tagged) = value else { return None };
        match tagged.tag.to_string().as_str() {
            "!Ref" => tagged.value.as_str(),
            "!GetAtt" => tagged.value.as_str()?.strip_suffix(".Arn"),
            _ => None,
        }
    }

    /// The parameter behind a `!Ref`, and its default.
    fn parameter<'a>(template: &'a Value, value: &Value) -> (&'a str, &'a Value) {
        let name = target(value).unwrap_or_else(|| panic!("{value:?} is not a !Ref"));
        let (key, parameter) = template["Parameters"]
            .as_mapping()
            .unwrap()
            .iter()
            .find(|(key, _)| key.as_str() == Some(name))
            .unwrap_or_else(|| panic!("{name} is not a parameter"));
        (key.as_str().unwrap(), &parameter["Default"])
    }

    fn as_list(value: &Value) -> Vec<&Value> {
        match value {
            Value::Sequence(list) => list.iter().collect(),
            single => vec![single],
        }
    }

    fn functions(template: &Value) -> Vec<(&str, &Value)> {
        template["Resources"]
            .as_mapping()
            .unwrap()
            .iter()
            .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
            .map(|(id, r)| (id.as_str().unwrap(), r))
            .collect()
    }

    /// A function's variable: its own, else the one from `Globals`.
    fn variable<'a>(template: &'a Value, function: &'a Value, name: &str) -> Option<&'a Value> {
        let own = &function["Properties"]["Environment"]["Variables"][name];
        let global = &template["Globals"]["Function"]["Environment"]["Variables"][name];
        [own, global].into_iter().find(|v| !v.is_null())
    }

    /// Item 11: CloudWatch cannot publish to a topic under the AWS-managed `alias/aws/sns`
    /// (its policy cannot grant CloudWatch), so every alarm action would fail silently. The
    /// topic uses a customer-managed, rotated key whose policy grants CloudWatch what it needs
    /// to publish, for this account's alarms only, and leaves the key administrable.
    #[test]
    fn alarm_topic_key_is_customer_managed_and_lets_cloudwatch_publish() {
        let template = template();
        let topic = resource(&template, "AlarmTopic");
        let key_ref = &topic["Properties"]["KmsMasterKeyId"];
        assert_ne!(key_ref.as_str(), Some("alias/aws/sns"), "the AWS-managed key");
        let key_id = target(key_ref).expect("the topic's key is a key of this template");
        let key = resource(&template, key_id);
        assert_eq!(key["Type"].as_str(), Some("AWS::KMS::Key"));
        assert_eq!(key["Properties"]["EnableKeyRotation"].as_bool(), Some(true));
        let statements = as_list(&key["Properties"]["KeyPolicy"]["Statement"]);
        let principal = |s: &Value, kind: &str| s["Principal"][kind].clone();
        let cloudwatch: Vec<_> = statements
            .iter()
            .filter(|s| principal(s, "Service").as_str() == Some("cloudwatch.amazonaws.com"))
            .collect();
        assert_eq!(cloudwatch.len(), 1, "one statement grants CloudWatch");
        let grant = cloudwatch[0];
        assert_eq!(grant["Effect"].as_str(), Some("Allow"));
        let actions: Vec<_> = as_list(&grant["Action"]).iter().filter_map(|a| a.as_str()).collect();
        assert!(actions.contains(&"kms:Decrypt"), "{actions:?}");
        assert!(actions.contains(&"kms:GenerateDataKey*"), "{actions:?}");
        assert_eq!(actions.len(), 2, "nothing else: {actions:?}");
        let account = &grant["Condition"]["StringEquals"]["aws:SourceAccount"];
        assert_eq!(target(account), Some("AWS::AccountId"), "scoped to this account's alarms");
        // Without an account statement nobody, root included, could manage the key.
        assert!(statements.iter().any(|s| {
            let root = principal(s, "AWS");
            let Value::Tagged(sub) = &root else { return false };
            sub.value.as_str().is_some_and(|arn| arn.ends_with(":iam::${AWS::AccountId}:root"))
                && s["Action"].as_str() == Some("kms:*")
        }));
        // Every alarm notifies through that topic.
        for (id, alarm) in template["Resources"].as_mapping().unwrap() {
            if alarm["Type"].as_str() == Some("AWS::CloudWatch::Alarm") {
                let actions = as_list(&alarm["Properties"]["AlarmActions"]);
                assert!(actions.iter().all(|a| target(a) == Some("AlarmTopic")), "{id:?}");
            }
        }
    }

    /// Item 12: the HTTP API's default route is throttled (burst and rate are parameters with
    /// defaults), so a flood is answered 429 by API Gateway before it costs Lambda or DynamoDB.
    #[test]
    fn http_api_default_route_is_throttled_by_parameters() {
        let template = template();
        let settings = &resource(&template, "HttpApi")["Properties"]["DefaultRouteSettings"];
        let (_, burst) = parameter(&template, &settings["ThrottlingBurstLimit"]);
        let (_, rate) = parameter(&template, &settings["ThrottlingRateLimit"]);
        let (burst, rate) = (burst.as_u64().unwrap(), rate.as_u64().unwrap());
        assert!(rate >= 1 && burst >= rate, "burst {burst}, rate {rate}");
        // Below the account's default (10,000/s), or the setting would limit nothing.
        assert!(rate < 10_000 && burst < 5_000, "burst {burst}, rate {rate}");
    }

    /// Issue 12, target 6: the worker's Stripe traffic has a ceiling whatever the queue's
    /// backlog: reserved concurrency, and an SQS event source that starts fewer invocations
    /// than that (so the queue waits instead of being throttled), both parameters.
    #[test]
    fn worker_concurrency_is_capped_and_the_queue_stays_below_it() {
        let template = template();
        let worker = &resource(&template, "WorkerFunction")["Properties"];
        let (_, reserved) = parameter(&template, &worker["ReservedConcurrentExecutions"]);
        let queue = &worker["Events"]["StaleRefresh"];
        assert_eq!(queue["Type"].as_str(), Some("SQS"));
        let scaling = &queue["Properties"]["ScalingConfig"]["MaximumConcurrency"];
        let (_, maximum) = parameter(&template, scaling);
        let (reserved, maximum) = (reserved.as_u64().unwrap(), maximum.as_u64().unwrap());
        // SQS allows 2 to 1000; one more slot than the queue's leaves room for the schedule.
        assert!((2..=1000).contains(&maximum), "MaximumConcurrency {maximum}");
        assert!(reserved > maximum, "reserved {reserved} <= MaximumConcurrency {maximum}");
        assert!(reserved <= 10, "reserved {reserved}: a ceiling that limits nothing");
    }

    /// Item 12: every request leaves one access log line with its request id, route, status,
    /// latency and source IP, and nothing that carries a credential or personal data (no
    /// header, so no Authorization; no body; no query string; no JWT claim).
    #[test]
    fn http_api_access_log_has_request_route_status_latency_and_ip_and_no_credentials() {
        let template = template();
        let settings = &resource(&template, "HttpApi")["Properties"]["AccessLogSettings"];
        let group = target(&settings["DestinationArn"]).expect("a log group of this template");
        assert_eq!(resource(&template, group)["Type"].as_str(), Some("AWS::Logs::LogGroup"));
        let format = settings["Format"].as_str().unwrap();
        let line: serde_json::Value = serde_json::from_str(format).expect("one JSON object");
        let values: Vec<&str> =
            line.as_object().unwrap().values().map(|v| v.as_str().unwrap()).collect();
        for needed in [
            "$context.requestId",
            "$context.routeKey",
            "$context.status",
            "$context.responseLatency",
            "$context.identity.sourceIp",
        ] {
            assert!(values.contains(&needed), "{needed} is not logged");
        }
        for value in &values {
            assert!(
                value.starts_with("$context.")
                    && !value.starts_with("$context.authorizer.claims")
                    && !value.contains("header")
                    && !value.contains("body")
                    && !value.contains("querystring")
                    && !value.contains("userAgent"),
                "{value} is not an access log field (it may carry a credential or personal data)"
            );
        }
    }

    /// Item 5: no log group is left to Lambda (which creates it with no retention: kept
    /// forever). Each function logs to `/aws/lambda/<function>`, declared with a retention by
    /// `AuditLogRetentionDays`, default 90 (both carry audit records: the API function's of
    /// profile updates and admin actions, the worker's of the scheduled sync); the access log
    /// by `LogRetentionDays`.
    #[test]
    fn every_log_group_is_declared_with_a_configurable_retention() {
        let template = template();
        let groups: Vec<(&str, &Value)> = template["Resources"]
            .as_mapping()
            .unwrap()
            .iter()
            .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Logs::LogGroup"))
            .map(|(id, r)| (id.as_str().unwrap(), r))
            .collect();
        let sub_text = |value: &Value| match value {
            Value::Tagged(t) if t.tag == "!Sub" => t.value.as_str().unwrap().to_string(),
            other => other.as_str().unwrap_or_default().to_string(),
        };
        let mut function_groups = Vec::new();
        for (id, function) in functions(&template) {
            let group_id = target(&function["Properties"]["LoggingConfig"]["LogGroup"])
                .unwrap_or_else(|| panic!("{id} logs to a group of this template"));
            let group = resource(&template, group_id);
            assert_eq!(group["Type"].as_str(), Some("AWS::Logs::LogGroup"), "{id}");
            let function_name = sub_text(&function["Properties"]["FunctionName"]);
            assert_eq!(
                sub_text(&group["Properties"]["LogGroupName"]),
                format!("/aws/lambda/{function_name}"),
                "{id}"
            );
            function_groups.push(group_id);
        }
        for (id, group) in &groups {
            let (name, days) = parameter(&template, &group["Properties"]["RetentionInDays"]);
            let days = days.as_u64().expect("a default retention");
            if function_groups.contains(id) {
                assert_eq!((name, days), ("AuditLogRetentionDays", 90), "{id}");
            } else {
                assert_eq!(name, "LogRetentionDays", "{id}");
            }
        }
        let access = &resource(&template, "HttpApi")["Properties"]["AccessLogSettings"];
        let access = target(&access["DestinationArn"]).expect("the access log group");
        assert!(groups.iter().any(|(id, _)| *id == access), "{access}");
    }

    /// Item 1: admin is the `AdminGroup` group, or `AdminScope` on a token of the operator
    /// client `AdminClientId` (none by default); a scope on the members' client grants nothing,
    /// and no description says otherwise. API Gateway lets an operator token through on
    /// `/internal/*` only.
    #[test]
    fn admin_is_a_group_or_the_operator_client_and_nothing_says_either_works() {
        let template = template();
        let parameters = &template["Parameters"];
        assert_eq!(parameters["AdminGroup"]["Default"].as_str(), Some("dashboard-admins"));
        assert_eq!(parameters["AdminClientId"]["Default"].as_str(), Some(""));
        let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
        assert_eq!(target(&globals["DASHBOARD_ADMIN_GROUP"]), Some("AdminGroup"));
        assert_eq!(target(&globals["DASHBOARD_ADMIN_SCOPE"]), Some("AdminScope"));
        // Unset rather than empty without an operator client: the server refuses an empty id.
        let Value::Tagged(client) = &globals["DASHBOARD_ADMIN_CLIENT_ID"] else {
            panic!("DASHBOARD_ADMIN_CLIENT_ID is not set from AdminClientId");
        };
        assert_eq!(client.tag, "!If");
        assert_eq!(target(&client.value[1]), Some("AdminClientId"));
        assert_eq!(target(&client.value[2]), Some("AWS::NoValue"));
        let readme = std::fs::read_to_string(crate::repo_root().join("infra/README.md")).unwrap();
        let text = format!("{}\n{readme}", serde_yaml::to_string(parameters).unwrap());
        for advice in ["Scope or Cognito group", "as a group or a resource server scope"] {
            assert!(!text.contains(advice), "still advises: {advice}");
        }
        // The members' routes accept only the members' client's tokens.
        let authorizers = &resource(&template, "HttpApi")["Properties"]["Auth"]["Authorizers"];
        let audience = |name: &str| authorizers[name]["JwtConfiguration"]["audience"].clone();
        let members = audience("CognitoJwt");
        let members: Vec<_> = as_list(&members).into_iter().filter_map(target).collect();
        assert_eq!(members, ["CognitoAppClientId"]);
        let api = &resource(&template, "ApiFunction")["Properties"]["Events"];
        assert_eq!(
            api["Internal"]["Properties"]["Auth"]["Authorizer"].as_str(),
            Some("CognitoJwtInternal")
        );
        assert!(api["Dashboard"]["Properties"]["Auth"].is_null(), "the default authorizer");
        let internal = serde_yaml::to_string(&audience("CognitoJwtInternal")).unwrap();
        assert!(internal.contains("AdminClientId") && internal.contains("CognitoAppClientId"));
    }

    /// Item 2: the function with SQS or schedule events sets `DASHBOARD_LAMBDA_EVENTS` and the
    /// adapter's pass-through path; no other function (nor `Globals`) sets the flag.
    #[test]
    fn only_the_function_that_receives_events_serves_the_events_path() {
        let template = template();
        let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
        assert!(globals["DASHBOARD_LAMBDA_EVENTS"].is_null());
        let mut receivers = Vec::new();
        for (id, function) in functions(&template) {
            let events = function["Properties"]["Events"].as_mapping().unwrap();
            let receives = events
                .values()
                .any(|e| matches!(e["Type"].as_str(), Some("SQS" | "Schedule" | "ScheduleV2")));
            let flag = variable(&template, function, "DASHBOARD_LAMBDA_EVENTS");
            if receives {
                receivers.push(id);
                assert_eq!(flag.and_then(Value::as_str), Some("true"), "{id}");
                let path = variable(&template, function, "AWS_LWA_PASS_THROUGH_PATH");
                assert_eq!(path.and_then(Value::as_str), Some("/events"), "{id}");
            } else {
                // Under Lambda the path is on unless switched off (AWS_LAMBDA_RUNTIME_API is set).
                let off = flag.and_then(Value::as_str) == Some("false");
                assert!(
                    off,
                    "{id} receives no events: it must set DASHBOARD_LAMBDA_EVENTS to false"
                );
            }
        }
        assert_eq!(receivers, ["WorkerFunction"]);
    }
}
