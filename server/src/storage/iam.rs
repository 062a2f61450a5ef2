//! The AWS permissions each Lambda function of `infra/template.yaml` needs: exactly the calls
//! its code makes, per table, index, queue and secret, each beside the code that makes it. The
//! template writes its IAM statements from these lists by hand; a test below holds the two
//! together both ways (nothing granted that no code calls, nothing called that is not granted).
//!
//! Adding a store call: add its line here (the action IAM checks, which for a transaction is
//! each item action: `PutItem`, `UpdateItem`, `DeleteItem`, `ConditionCheckItem`, see
//! <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html>),
//! then the matching statement in the template. A Query or Scan on an index is checked against
//! the index's own ARN (`<table arn>/index/<name>`), not the table's
//! (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html>).
//!
//! Not listed, because SAM adds them with the feature that needs them: CloudWatch Logs
//! (`AWSLambdaBasicExecutionRole`), X-Ray (`Tracing: Active`), the SQS event source's receive
//! and delete, and the worker's failure destination. Metrics are log records (EMF), so no
//! `cloudwatch:PutMetricData`.

use super::schema::{
    BY_CREATED, BY_STRIPE_CUSTOMER, ORDER_SNAPSHOTS, STRIPE_CUSTOMERS, STRIPE_EVENTS, USER_PROFILES,
};

/// What a permission is granted on, named the way the code names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// A table, by its base name in `schema` (the template names it `${Stage}-<base name>`).
    Table(&'static str),
    /// An index of a table: (table base name, index name).
    Index(&'static str, &'static str),
    /// The stale-order refresh queue (the template's `RefreshQueue`).
    RefreshQueue,
    /// The Stripe secret (the template's `StripeSecretArn` parameter).
    StripeSecret,
}

/// One IAM action on one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Grant {
    pub action: &'static str,
    pub resource: Resource,
}

const fn table(base_name: &'static str, action: &'static str) -> Grant {
    Grant { action, resource: Resource::Table(base_name) }
}

const fn index(base_name: &'static str, index: &'static str, action: &'static str) -> Grant {
    Grant { action, resource: Resource::Index(base_name, index) }
}

/// The API function (`ApiFunction`): every route of the contract, webhooks and admin included.
pub const API_FUNCTION: &[Grant] = &[
    // UserProfiles
    // Store::get_profile (profiles::get_or_create, orders read and reconcile).
    table(USER_PROFILES, "dynamodb:GetItem"),
    // Store::create_profile (profiles::get_or_create, first sign-in).
    table(USER_PROFILES, "dynamodb:PutItem"),
    // Store::delete_erasing_profile (DELETE /dashboard/profile, the erasure's last step).
    table(USER_PROFILES, "dynamodb:DeleteItem"),
    // Store::claim_refresh and Store::release_refresh (a stale listing requests its refresh
    // once per window), Store::update_profile (PUT /dashboard/profile), the profile `Update` in
    // Store::link_customer's TransactWriteItems (admin link), Store::record_sync (reconcile, webhook), and the profile `Update` in Store::insert_order's
    // and Store::write_applied_event's TransactWriteItems (order count, last webhook).
    table(USER_PROFILES, "dynamodb:UpdateItem"),
    // The profile `ConditionCheck` in Store::link_customer's TransactWriteItems (backfilling the
    // claim of a link made before claims).
    table(USER_PROFILES, "dynamodb:ConditionCheckItem"),
    // Store::member_for_customer (admin link, webhook), Store::link_customer (links made
    // before claims).
    index(USER_PROFILES, BY_STRIPE_CUSTOMER, "dynamodb:Query"),
    // Store::linked_members (POST /internal/sync/all runs reconcile_all in this function).
    index(USER_PROFILES, BY_STRIPE_CUSTOMER, "dynamodb:Scan"),
    // OrderSnapshots
    // Store::get_order (order detail, webhook, write path).
    table(ORDER_SNAPSHOTS, "dynamodb:GetItem"),
    // Store::all_orders (reconcile: the admin trigger, in-process refreshes).
    table(ORDER_SNAPSHOTS, "dynamodb:Query"),
    // Store::replace_order (also from Store::list_orders: an order cached before listing
    // entries is written back once with one), the order `Put` in Store::insert_order's and
    // Store::write_applied_event's TransactWriteItems, and the listing state's `Put` in
    // Store::link_customer's and Store::record_sync's (reconcile) TransactWriteItems.
    table(ORDER_SNAPSHOTS, "dynamodb:PutItem"),
    // The listing state's `Delete` in Store::unlink_customer's (admin unlink) and
    // Store::mark_erasing's (DELETE /dashboard/profile) TransactWriteItems.
    table(ORDER_SNAPSHOTS, "dynamodb:DeleteItem"),
    // Store::delete_orders_except (admin link: the old customer's orders leave the member).
    table(ORDER_SNAPSHOTS, "dynamodb:BatchWriteItem"),
    // Store::list_orders (GET /dashboard/orders).
    index(ORDER_SNAPSHOTS, BY_CREATED, "dynamodb:Query"),
    // StripeCustomers
    // Store::customer_claim (admin link; webhook, through Store::member_for_customer).
    table(STRIPE_CUSTOMERS, "dynamodb:GetItem"),
    // The claim `Put` and the old claim's `Delete` in Store::link_customer's TransactWriteItems.
    table(STRIPE_CUSTOMERS, "dynamodb:PutItem"),
    table(STRIPE_CUSTOMERS, "dynamodb:DeleteItem"),
    // StripeEvents
    // Store::pending_event (webhook: a redelivery), Store::is_unknown_order (order detail's
    // live fallback).
    table(STRIPE_EVENTS, "dynamodb:GetItem"),
    // Store::receive_event and Store::record_event (webhook ledger), the ledger `Put` in
    // Store::write_applied_event's TransactWriteItems, Store::remember_unknown_order (order
    // detail).
    table(STRIPE_EVENTS, "dynamodb:PutItem"),
    // Store::spend (per-member counters: order detail's live fallback, profile writes),
    // Store::spend_stripe_second (the Stripe request budget).
    table(STRIPE_EVENTS, "dynamodb:UpdateItem"),
    // Other services
    // OrderService::request_refresh (a stale listing queues its refresh).
    Grant { action: "sqs:SendMessage", resource: Resource::RefreshQueue },
    // secrets::load (once per cold start).
    Grant { action: "secretsmanager:GetSecretValue", resource: Resource::StripeSecret },
];

/// The worker (`WorkerFunction`): the adapter's pass-through path only (`events::handle`): SQS
/// batches of refreshes (`OrderService::reconcile`) and of deferred webhook events
/// (`OrderService::apply_deferred`), and the daily schedule
/// (`OrderService::catch_up`: Stripe's Events list applied through the webhook path, or the
/// per-member sweep). No listing, so it never queues a refresh.
pub const WORKER_FUNCTION: &[Grant] = &[
    // UserProfiles
    // Store::get_profile (reconcile).
    table(USER_PROFILES, "dynamodb:GetItem"),
    // Store::record_sync (reconcile), and the profile `Update` in Store::insert_order and
    // Store::write_applied_event (deferred and caught-up events).
    table(USER_PROFILES, "dynamodb:UpdateItem"),
    // Store::linked_members (the schedule's reconcile_all).
    index(USER_PROFILES, BY_STRIPE_CUSTOMER, "dynamodb:Scan"),
    // Store::member_for_customer (the catch-up applies events as webhooks do).
    index(USER_PROFILES, BY_STRIPE_CUSTOMER, "dynamodb:Query"),
    // OrderSnapshots
    // Store::get_order (write path: a conditional write that lost re-reads).
    table(ORDER_SNAPSHOTS, "dynamodb:GetItem"),
    // Store::all_orders (reconcile).
    table(ORDER_SNAPSHOTS, "dynamodb:Query"),
    // Store::replace_order, the order `Put` in Store::insert_order and
    // Store::write_applied_event, and the listing state's `Put` in Store::record_sync
    // (reconcile).
    table(ORDER_SNAPSHOTS, "dynamodb:PutItem"),
    // StripeCustomers
    // Store::customer_claim (the catch-up, through Store::member_for_customer).
    table(STRIPE_CUSTOMERS, "dynamodb:GetItem"),
    // StripeEvents
    // Store::event_seen (the catch-up's ledger check), Store::pending_event (a deferred
    // webhook event from the queue), Store::catch_up_checkpoint.
    table(STRIPE_EVENTS, "dynamodb:GetItem"),
    // Store::record_event and the ledger `Put` in Store::write_applied_event (the ledger),
    // Store::advance_catch_up_checkpoint.
    table(STRIPE_EVENTS, "dynamodb:PutItem"),
    // Store::spend_stripe_second (the Stripe request budget).
    table(STRIPE_EVENTS, "dynamodb:UpdateItem"),
    // Other services
    // secrets::load (once per cold start).
    Grant { action: "secretsmanager:GetSecretValue", resource: Resource::StripeSecret },
];

/// Each function of the template (its logical id) and what it may call.
pub const FUNCTIONS: &[(&str, &[Grant])] =
    &[("ApiFunction", API_FUNCTION), ("WorkerFunction", WORKER_FUNCTION)];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_yaml::Value;
    use std::collections::BTreeSet;

    fn template() -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml");
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// A grant as text (`dynamodb:Query on UserProfiles/index/byStripeCustomerId`), so that a
    /// failure lists exactly what differs.
    fn render(grant: &Grant) -> String {
        let resource = match grant.resource {
            Resource::Table(table) => table.to_string(),
            Resource::Index(table, index) => format!("{table}/index/{index}"),
            Resource::RefreshQueue => "the refresh queue".to_string(),
            Resource::StripeSecret => "the Stripe secret".to_string(),
        };
        format!("{} on {resource}", grant.action)
    }

    /// A table's base name from its logical id (`TableName: !Sub "${Stage}-<base name>"`).
    fn table_base_name(template: &Value, logical_id: &str) -> Option<String> {
        let resource = &template["Resources"][logical_id];
        if resource["Type"].as_str() != Some("AWS::DynamoDB::Table") {
            return None;
        }
        let Value::Tagged(name) = &resource["Properties"]["TableName"] else {
            panic!("{logical_id}: TableName is not !Sub \"${{Stage}}-<name>\"");
        };
        Some(name.value.as_str()?.strip_prefix("${Stage}-")?.to_string())
    }

    /// One `Resource` entry of a statement, as the code names it.
    fn resource(template: &Value, function: &str, value: &Value) -> String {
        let unknown =
            || panic!("{function}: a statement's resource is not one of the list's: {value:?}");
        let Value::Tagged(tagged) = value else { unknown() };
        let text = tagged.value.as_str();
        match tagged.tag.to_string().as_str() {
            // `!GetAtt X.Arn` (or `!GetAtt [X, Arn]`): a table or the refresh queue.
            "!GetAtt" => {
                let logical_id = match &tagged.value {
                    Value::String(s) => s.strip_suffix(".Arn").unwrap_or_else(|| unknown()),
                    Value::Sequence(parts) if parts.len() == 2 && parts[1] == "Arn" => {
                        parts[0].as_str().unwrap_or_else(|| unknown())
                    }
                    _ => unknown(),
                };
                if logical_id == "RefreshQueue" {
                    return "the refresh queue".to_string();
                }
                table_base_name(template, logical_id).unwrap_or_else(|| unknown())
            }
            // `!Sub "${X.Arn}/index/<name>"`: an index.
            "!Sub" => {
                let text = text.unwrap_or_else(|| unknown());
                let (table, index) = text
                    .strip_prefix("${")
                    .and_then(|t| t.split_once(".Arn}/index/"))
                    .unwrap_or_else(|| unknown());
                let table = table_base_name(template, table).unwrap_or_else(|| unknown());
                format!("{table}/index/{index}")
            }
            "!Ref" if text == Some("StripeSecretArn") => "the Stripe secret".to_string(),
            _ => unknown(),
        }
    }

    /// What the template grants `function`, rendered like [`render`]. Every policy must be an
    /// inline statement list: SAM's policy templates (`DynamoDBCrudPolicy`, `DynamoDBReadPolicy`,
    /// `SQSSendMessagePolicy`, …) and managed policies grant actions no code calls.
    fn granted(template: &Value, function: &str) -> BTreeSet<String> {
        let policies = &template["Resources"][function]["Properties"]["Policies"];
        let mut granted = BTreeSet::new();
        for policy in policies.as_sequence().expect("Policies is a list") {
            let keys: Vec<_> = policy
                .as_mapping()
                .map(|m| m.keys().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            assert_eq!(
                keys,
                ["Statement"],
                "{function}: {policy:?} is not an inline statement list (a SAM policy template \
                 or a managed policy grants more than the code calls)"
            );
            let statements = match &policy["Statement"] {
                Value::Sequence(list) => list.clone(),
                single => vec![single.clone()],
            };
            for statement in statements {
                for key in statement.as_mapping().unwrap().keys() {
                    let key = key.as_str().unwrap();
                    assert!(
                        ["Sid", "Effect", "Action", "Resource"].contains(&key),
                        "{function}: a statement with {key}: only Allow of listed actions on \
                         listed resources"
                    );
                }
                assert_eq!(statement["Effect"].as_str(), Some("Allow"), "{function}");
                let actions: Vec<&str> = match &statement["Action"] {
                    Value::Sequence(list) => list.iter().map(|a| a.as_str().unwrap()).collect(),
                    single => vec![single.as_str().expect("an action")],
                };
                let resources = match &statement["Resource"] {
                    Value::Sequence(list) => list.clone(),
                    single => vec![single.clone()],
                };
                for action in actions {
                    for value in &resources {
                        let resource = resource(template, function, value);
                        granted.insert(format!("{action} on {resource}"));
                    }
                }
            }
        }
        granted
    }

    /// Least privilege, held both ways: each function's IAM statements in the template grant
    /// exactly the actions its code calls (the lists above), on exactly the tables, indexes,
    /// queue and secret it calls them on. Nothing through SAM policy templates.
    #[test]
    fn template_grants_each_function_exactly_the_calls_its_code_makes() {
        let template = template();
        let functions: BTreeSet<&str> = template["Resources"]
            .as_mapping()
            .unwrap()
            .iter()
            .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
            .map(|(id, _)| id.as_str().unwrap())
            .collect();
        let listed: BTreeSet<&str> = FUNCTIONS.iter().map(|(id, _)| *id).collect();
        assert_eq!(functions, listed, "every function of the template has its list here");
        for (function, grants) in FUNCTIONS {
            let needed: BTreeSet<String> = grants.iter().map(render).collect();
            assert_eq!(needed.len(), grants.len(), "{function}: a line is listed twice");
            let granted = granted(&template, function);
            let extra: Vec<_> = granted.difference(&needed).collect();
            let missing: Vec<_> = needed.difference(&granted).collect();
            assert!(
                extra.is_empty() && missing.is_empty(),
                "{function}: granted but called by no code: {extra:#?}\n\
                 called but not granted: {missing:#?}"
            );
        }
    }

    /// The lists themselves: the worker never queues refreshes, reads and adds to the webhook
    /// ledger only as the webhook path does (the catch-up, deferred events: no delete; its one
    /// update is the Stripe budget's counter), and nothing anywhere scans a table (only the
    /// sparse profile index, for the schedule).
    #[test]
    fn the_worker_queues_nothing_never_deletes_from_the_ledger_and_no_function_scans_a_table() {
        for grant in WORKER_FUNCTION {
            assert_ne!(grant.resource, Resource::RefreshQueue, "{}", render(grant));
            if grant.resource == Resource::Table(STRIPE_EVENTS) {
                assert!(
                    ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
                        .contains(&grant.action),
                    "{}",
                    render(grant)
                );
            }
        }
        for (_, grants) in FUNCTIONS {
            for grant in grants.iter().filter(|g| g.action == "dynamodb:Scan") {
                assert_eq!(
                    grant.resource,
                    Resource::Index(USER_PROFILES, BY_STRIPE_CUSTOMER),
                    "{}",
                    render(grant)
                );
            }
        }
    }
}
