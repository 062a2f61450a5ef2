//! Rules real DynamoDB enforces (or that our tables depend on) that the emulators do not all
//! check. Debug builds (the tests, the local default) run every request through [`check`] in an
//! SDK interceptor, so a request AWS would reject fails in every test, on every store.
//!
//! Sources (DynamoDB developer guide and API reference):
//! - empty key values: `HowItWorks.NamingRulesDataTypes.html` ("String ... If the string is used
//!   as a key attribute ... minimum length of 1"; empty sets are never allowed) and
//!   `API_Query.html` (key condition values are key attribute values);
//! - item size: `ServiceQuotas.html#limits-items` (400 KB, names included) and
//!   `CapacityUnitCalculations.html` (how an item's size is counted);
//! - transactions: `API_TransactWriteItems.html` (at most 100 actions and 4 MB of items, and
//!   no two on one item: "You can't target the same item with multiple operations within the same
//!   transaction");
//! - batches: `API_BatchWriteItem.html` (at most 25 put or delete requests);
//! - reserved words: `ReservedWords.html` (the list in `reserved_words.txt`) and
//!   `Expressions.ExpressionAttributeNames.html`;
//! - TTL: `time-to-live-ttl-before-you-start.html` (a Number in epoch seconds, or the item never
//!   expires);
//! - index projections: `GSI.html#GSI.Projections` (a global index returns only what it
//!   projects) and `LSI.html#LSI.Projections` (a local index fetches the rest from the table, at
//!   a read of the whole item each): a query of an index asks only for what the index holds.

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::sync::LazyLock;

/// 400 KB: DynamoDB's item size limit (names and values, as counted by [`item_size`]).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// Bytes of a sort key value (a partition key may hold 2,048).
pub const MAX_SORT_KEY_BYTES: usize = 1024;
/// Actions in one `TransactWriteItems` / `TransactGetItems` call.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
/// Bytes of the items of one transaction (`API_TransactWriteItems.html`: "The aggregate size
/// of the items in the transaction cannot exceed 4 MB").
pub const MAX_TRANSACTION_BYTES: usize = 4 * 1024 * 1024;
/// Put and delete requests in one `BatchWriteItem` call.
pub const MAX_BATCH_WRITE_REQUESTS: usize = 25;

/// Attributes that are keys of a table or an index (an empty string there is rejected).
static KEY_ATTRIBUTES: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    let mut keys = HashSet::new();
    for table in super::schema::tables() {
        keys.insert(table.partition.name);
        keys.extend(table.sort.map(|k| k.name));
        for index in table.global_indexes.iter().chain(&table.local_indexes) {
            keys.insert(index.partition.name);
            keys.extend(index.sort.map(|k| k.name));
        }
    }
    keys
});

/// Attributes DynamoDB's TTL reads (they must be numbers of epoch seconds).
static TTL_ATTRIBUTES: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| super::schema::tables().iter().filter_map(|t| t.ttl_attribute).collect());

static RESERVED_WORDS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("reserved_words.txt").lines().map(str::trim).collect());

/// Words of the expression grammar itself, which stand bare in every expression.
const SYNTAX: [&str; 9] = ["AND", "OR", "NOT", "BETWEEN", "IN", "SET", "REMOVE", "ADD", "DELETE"];

const EXPRESSIONS: [&str; 5] = [
    "KeyConditionExpression",
    "FilterExpression",
    "ProjectionExpression",
    "ConditionExpression",
    "UpdateExpression",
];

/// The SDK interceptor: checks the serialized request body before it is sent, and counts the
/// requests by operation (so tests can hold a request to a bound on its store calls).
#[derive(Debug, Default)]
pub struct RulesInterceptor {
    pub calls: std::sync::Arc<CallCounts>,
}

/// Requests sent, by operation name (`Query`, `TransactWriteItems`, …), retries included.
#[derive(Debug, Default)]
pub struct CallCounts(std::sync::Mutex<std::collections::HashMap<String, u64>>);

impl CallCounts {
    pub fn get(&self, operation: &str) -> u64 {
        self.0.lock().map(|c| c.get(operation).copied().unwrap_or(0)).unwrap_or(0)
    }

    fn add(&self, operation: &str) {
        if let Ok(mut counts) = self.0.lock() {
            *counts.entry(operation.to_string()).or_default() += 1;
        }
    }
}

/// The count of requests that carried a `ClientRequestToken` (any operation).
pub const TOKENED: &str = "ClientRequestToken";

/// A request real DynamoDB would reject (or that would silently misbehave there).
#[derive(Debug, thiserror::Error)]
#[error("request breaks a DynamoDB rule: {0}")]
pub struct RuleViolation(pub String);

impl Intercept for RulesInterceptor {
    fn name(&self) -> &'static str {
        "DynamoDbRules"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let request = context.request();
        let operation = request
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or_default()
            .to_string();
        self.calls.add(&operation);
        let Some(body) = request.body().bytes() else { return Ok(()) };
        let Ok(body) = serde_json::from_slice::<Value>(body) else { return Ok(()) };
        if body.get("ClientRequestToken").is_some() {
            self.calls.add(TOKENED);
        }
        check(&operation, &body).map_err(|v| Box::new(v) as _)
    }
}

/// Checks one request (the operation name and its JSON body) against the rules.
pub fn check(operation: &str, body: &Value) -> Result<(), RuleViolation> {
    let fail = |message: String| Err(RuleViolation(format!("{operation}: {message}")));
    if let Some(actions) = body.get("TransactItems").and_then(Value::as_array) {
        if actions.len() > MAX_TRANSACTION_ITEMS {
            return fail(format!(
                "{} actions in one transaction (at most {MAX_TRANSACTION_ITEMS})",
                actions.len()
            ));
        }
        let bytes: usize = actions
            .iter()
            .filter_map(|action| action.get("Put")?.get("Item")?.as_object())
            .map(item_size)
            .sum();
        if bytes > MAX_TRANSACTION_BYTES {
            return fail(format!("{bytes} bytes of items in one transaction (at most 4 MB)"));
        }
        let mut targets = HashSet::new();
        for action in actions {
            // `{"Put": {...}}`, `{"Update": {...}}`, …: each carries a request of its own.
            for inner in action.as_object().into_iter().flat_map(Map::values) {
                check(operation, inner)?;
                if let Some(target) = item_identity(inner) {
                    if !targets.insert(target.clone()) {
                        return fail(format!("two actions on one item ({target})"));
                    }
                }
            }
        }
    }
    if let Some(tables) = body.get("RequestItems").and_then(Value::as_object) {
        let requests: usize = tables.values().filter_map(Value::as_array).map(Vec::len).sum();
        if operation == "BatchWriteItem" && requests > MAX_BATCH_WRITE_REQUESTS {
            return fail(format!(
                "{requests} requests in one batch (at most {MAX_BATCH_WRITE_REQUESTS})"
            ));
        }
        // `{"PutRequest": {"Item": …}}` or `{"DeleteRequest": {"Key": …}}`.
        for request in tables.values().filter_map(Value::as_array).flatten() {
            for inner in request.as_object().into_iter().flat_map(Map::values) {
                check(operation, inner)?;
            }
        }
    }
    let empty_map = Map::new();
    let values = body.get("ExpressionAttributeValues").and_then(Value::as_object);
    let values = values.unwrap_or(&empty_map);
    let names = body.get("ExpressionAttributeNames").and_then(Value::as_object);
    let names = names.unwrap_or(&empty_map);
    for (field, value) in values {
        if let Some(problem) = empty_set(value) {
            return fail(format!("expression value {field} {problem}"));
        }
    }
    if let Some(item) = body.get("Item").and_then(Value::as_object) {
        let size = item_size(item);
        if size > MAX_ITEM_BYTES {
            return fail(format!("item of {size} bytes (at most {MAX_ITEM_BYTES})"));
        }
        for (name, value) in item {
            attribute_rules(name, value).or_else(fail)?;
        }
    }
    for field in ["Key", "ExclusiveStartKey"] {
        for (name, value) in body.get(field).and_then(Value::as_object).unwrap_or(&empty_map) {
            attribute_rules(name, value).or_else(fail)?;
        }
    }
    if let Some(index) = body.get("IndexName").and_then(Value::as_str) {
        let projection = body.get("ProjectionExpression").and_then(Value::as_str);
        let table = body.get("TableName").and_then(Value::as_str).unwrap_or_default();
        for attribute in projection.map(|p| projected_names(p, names)).unwrap_or_default() {
            if !index_holds(table, index, &attribute) {
                return fail(format!("index {index} does not hold `{attribute}`"));
            }
        }
    }
    let expressions: Vec<(&str, &str)> = EXPRESSIONS
        .iter()
        .filter_map(|field| Some((*field, body.get(*field)?.as_str()?)))
        .collect();
    // DynamoDB refuses a request that defines a placeholder no expression uses.
    for (defined, sigil) in [(names, '#'), (values, ':')] {
        for placeholder in defined.keys() {
            let used =
                expressions.iter().any(|(_, e)| placeholders(e, sigil).contains(placeholder));
            if !used {
                return fail(format!("placeholder {placeholder} is defined but not used"));
            }
        }
    }
    for (field, expression) in expressions {
        if let Some(word) = reserved_word(expression) {
            return fail(format!("{field} uses the reserved word `{word}` bare"));
        }
        if field == "KeyConditionExpression" {
            // Every value in a key condition is compared with a key attribute.
            for placeholder in placeholders(expression, ':') {
                if values.get(&placeholder).is_some_and(is_empty_scalar) {
                    return fail(format!("key condition value {placeholder} is empty"));
                }
            }
        }
        if field == "UpdateExpression" {
            for (name, value) in set_assignments(expression, names, values) {
                attribute_rules(&name, value).or_else(fail)?;
            }
            // `ADD` takes a number (a counter) or a set, nothing else
            // (`Expressions.UpdateExpressions.html#Expressions.UpdateExpressions.ADD`).
            for placeholder in add_operands(expression) {
                let kind = values.get(&placeholder).and_then(Value::as_object);
                let kind = kind.and_then(|o| o.keys().next()).map(String::as_str);
                if !matches!(kind, Some("N" | "SS" | "NS" | "BS")) {
                    return fail(format!("ADD operand {placeholder} is not a number or a set"));
                }
            }
        }
    }
    Ok(())
}

/// The top-level attributes a projection expression names (`a.b` and `a[0]` name `a`), with
/// placeholders resolved.
fn projected_names(expression: &str, names: &Map<String, Value>) -> Vec<String> {
    expression
        .split(',')
        .filter_map(|path| {
            let first = path.trim().split(['.', '[']).next()?;
            match first.strip_prefix('#') {
                Some(_) => names.get(first)?.as_str().map(str::to_string),
                None => Some(first.to_string()),
            }
        })
        .collect()
}

/// Whether `index` of `table` (one of ours) holds `attribute`: its keys, the table's keys, or
/// what it projects. Unknown tables and indexes hold everything (nothing to check).
fn index_holds(table: &str, index: &str, attribute: &str) -> bool {
    let Some(spec) = super::schema::tables().into_iter().find(|t| table.ends_with(t.base_name))
    else {
        return true;
    };
    let Some(found) =
        spec.global_indexes.iter().chain(&spec.local_indexes).find(|i| i.name == index)
    else {
        return true;
    };
    let keys = [Some(spec.partition), spec.sort, Some(found.partition), found.sort];
    keys.iter().flatten().any(|k| k.name == attribute) || found.projection.holds(attribute)
}

/// The table and primary key a transaction action targets (from its `Key`, or a `Put`'s
/// `Item`), as text; `None` when the table is not one of ours.
fn item_identity(action: &Value) -> Option<String> {
    let table = action.get("TableName")?.as_str()?;
    let spec = super::schema::tables().into_iter().find(|t| table.ends_with(t.base_name))?;
    let attributes = action.get("Key").or_else(|| action.get("Item"))?.as_object()?;
    let mut identity = table.to_string();
    for key in std::iter::once(spec.partition).chain(spec.sort) {
        identity.push_str(&format!(" {}={}", key.name, attributes.get(key.name)?));
    }
    Some(identity)
}

/// Rules for one attribute of an item: no empty or oversized key values, no empty sets,
/// numeric TTLs.
fn attribute_rules(name: &str, value: &Value) -> Result<(), String> {
    if KEY_ATTRIBUTES.contains(name) && is_empty_scalar(value) {
        return Err(format!("key attribute {name} is empty"));
    }
    // A sort key holds at most 1,024 bytes, a partition key 2,048 (`ServiceQuotas.html`); the
    // lower bound is checked for every key attribute, since ours serve as sort keys somewhere.
    let key_len = value.get("S").and_then(Value::as_str).map_or(0, str::len);
    if KEY_ATTRIBUTES.contains(name) && key_len > MAX_SORT_KEY_BYTES {
        return Err(format!(
            "key attribute {name} has {key_len} bytes (at most {MAX_SORT_KEY_BYTES})"
        ));
    }
    if TTL_ATTRIBUTES.contains(name) && value.get("N").is_none() && value.get("NULL").is_none() {
        return Err(format!("TTL attribute {name} is not a number of epoch seconds"));
    }
    match empty_set(value) {
        Some(problem) => Err(format!("attribute {name} {problem}")),
        None => Ok(()),
    }
}

fn is_empty_scalar(value: &Value) -> bool {
    ["S", "B"].iter().any(|t| value.get(t).and_then(Value::as_str) == Some(""))
}

/// An empty set anywhere inside a value.
fn empty_set(value: &Value) -> Option<String> {
    let object = value.as_object()?;
    for (kind, inner) in object {
        match kind.as_str() {
            "SS" | "NS" | "BS" if inner.as_array().is_some_and(Vec::is_empty) => {
                return Some(format!("holds an empty {kind} set"));
            }
            "M" => {
                if let Some(found) = inner.as_object()?.values().find_map(empty_set) {
                    return Some(found);
                }
            }
            "L" => {
                if let Some(found) = inner.as_array()?.iter().find_map(empty_set) {
                    return Some(found);
                }
            }
            _ => {}
        }
    }
    None
}

/// An item's size as DynamoDB counts it (`CapacityUnitCalculations.html`): attribute names
/// plus values; strings and binaries by length, numbers by significant digits, 1 byte for
/// booleans and nulls, 3 bytes plus one per element for lists and maps.
pub fn item_size(item: &Map<String, Value>) -> usize {
    item.iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

fn value_size(value: &Value) -> usize {
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else { return 0 };
    match (kind.as_str(), inner) {
        ("S", Value::String(s)) => s.len(),
        ("N", Value::String(n)) => number_size(n),
        // Binary travels as base64: 3 bytes per 4 characters.
        ("B", Value::String(b)) => b.len() / 4 * 3,
        ("SS", Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::len).sum(),
        ("NS", Value::Array(a)) => a.iter().filter_map(Value::as_str).map(number_size).sum(),
        ("BS", Value::Array(a)) => {
            a.iter().filter_map(Value::as_str).map(|b| b.len() / 4 * 3).sum()
        }
        ("M", Value::Object(m)) => {
            3 + m.iter().map(|(k, v)| 1 + k.len() + value_size(v)).sum::<usize>()
        }
        ("L", Value::Array(l)) => 3 + l.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        _ => 1,
    }
}

fn number_size(number: &str) -> usize {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len().max(1);
    significant.div_ceil(2) + 1
}

/// The first bare attribute name in an expression that is a reserved word.
fn reserved_word(expression: &str) -> Option<String> {
    let mut chars = expression.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if !(c.is_ascii_alphabetic() || c == '_' || c == '#' || c == ':') {
            continue;
        }
        let mut end = start + c.len_utf8();
        while let Some(&(i, next)) = chars.peek() {
            if !(next.is_ascii_alphanumeric() || next == '_') {
                break;
            }
            end = i + next.len_utf8();
            chars.next();
        }
        let word = &expression[start..end];
        // Placeholders are fine; a function name is followed by `(`.
        let is_function = expression[end..].trim_start().starts_with('(');
        if c == '#' || c == ':' || is_function {
            continue;
        }
        let upper = word.to_ascii_uppercase();
        if !SYNTAX.contains(&upper.as_str()) && RESERVED_WORDS.contains(upper.as_str()) {
            return Some(word.to_string());
        }
    }
    None
}

/// `:name` or `#name` placeholders used in an expression.
fn placeholders(expression: &str, sigil: char) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = expression;
    while let Some(at) = rest.find(sigil) {
        let tail = &rest[at + 1..];
        let len =
            tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        found.push(format!("{sigil}{}", &tail[..len]));
        rest = &tail[len..];
    }
    found
}

/// The `:value` operands of an update's ADD clause (`ADD path :value, …`).
fn add_operands(expression: &str) -> Vec<String> {
    let upper = expression.to_ascii_uppercase();
    // The keyword, not a name that ends in it.
    let start =
        if upper.starts_with("ADD ") { Some(0) } else { upper.find(" ADD ").map(|i| i + 1) };
    let Some(start) = start else { return Vec::new() };
    let clause_end = [" SET ", " REMOVE ", " DELETE "]
        .iter()
        .filter_map(|k| upper[start..].find(k).map(|i| start + i))
        .min()
        .unwrap_or(expression.len());
    expression[start + 4..clause_end]
        .split(',')
        .filter_map(|action| action.split_whitespace().nth(1))
        .filter(|operand| operand.starts_with(':'))
        .map(str::to_string)
        .collect()
}

/// `name = :value` pairs of an update's SET clause, names resolved, where the value is a
/// plain placeholder (arithmetic and functions are left alone).
fn set_assignments<'a>(
    expression: &str,
    names: &Map<String, Value>,
    values: &'a Map<String, Value>,
) -> Vec<(String, &'a Value)> {
    let upper = expression.to_ascii_uppercase();
    let Some(start) = upper.find("SET ") else { return Vec::new() };
    let clause_end = [" REMOVE ", " ADD ", " DELETE "]
        .iter()
        .filter_map(|k| upper[start..].find(k).map(|i| start + i))
        .min()
        .unwrap_or(expression.len());
    expression[start + 4..clause_end]
        .split(',')
        .filter_map(|assignment| {
            let (path, value) = assignment.split_once('=')?;
            let (path, value) = (path.trim(), value.trim());
            let name = match path.strip_prefix('#') {
                Some(_) => names.get(path)?.as_str()?.to_string(),
                None => path.to_string(),
            };
            Some((name, values.get(value)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn violation(operation: &str, body: Value) -> String {
        check(operation, &body).expect_err("should be refused").0
    }

    #[test]
    fn an_empty_key_condition_value_is_refused() {
        let message = violation(
            "Query",
            json!({
                "KeyConditionExpression": "#u = :u AND #k BETWEEN :lo AND :hi",
                "ExpressionAttributeNames": {"#u": "userId", "#k": "createdKey"},
                "ExpressionAttributeValues": {":u": {"S": "m"}, ":lo": {"S": ""}, ":hi": {"S": "~"}},
            }),
        );
        assert!(message.contains(":lo is empty"), "{message}");
        check(
            "Query",
            &json!({
                "KeyConditionExpression": "#u = :u AND #k < :hi",
                "ExpressionAttributeValues": {":u": {"S": "m"}, ":hi": {"S": "~"}},
            }),
        )
        .unwrap();
        // A placeholder nothing uses is refused too (as AWS does).
        let message = violation(
            "Query",
            json!({
                "KeyConditionExpression": "#u = :u",
                "ExpressionAttributeNames": {"#u": "userId", "#k": "createdKey"},
                "ExpressionAttributeValues": {":u": {"S": "m"}},
            }),
        );
        assert!(message.contains("#k is defined but not used"), "{message}");
    }

    #[test]
    fn empty_key_attributes_and_sets_are_refused() {
        let message =
            violation("PutItem", json!({"Item": {"userId": {"S": "m"}, "createdKey": {"S": ""}}}));
        assert!(message.contains("createdKey is empty"), "{message}");
        let message = violation("GetItem", json!({"Key": {"userId": {"S": ""}}}));
        assert!(message.contains("userId is empty"), "{message}");
        let long = "p".repeat(MAX_SORT_KEY_BYTES + 1);
        let message =
            violation("GetItem", json!({"Key": {"userId": {"S": "m"}, "orderId": {"S": long}}}));
        assert!(message.contains("orderId has 1025 bytes"), "{message}");
        let message = violation(
            "PutItem",
            json!({"Item": {"userId": {"S": "m"}, "tags": {"M": {"x": {"SS": []}}}}}),
        );
        assert!(message.contains("empty SS set"), "{message}");
        // Linking to an empty customer id would put an empty value in the GSI key.
        let message = violation(
            "UpdateItem",
            json!({
                "Key": {"userId": {"S": "m"}},
                "UpdateExpression": "SET #c = :c, #v = #v + :one",
                "ExpressionAttributeNames": {"#c": "stripeCustomerId", "#v": "version"},
                "ExpressionAttributeValues": {":c": {"S": ""}, ":one": {"N": "1"}},
            }),
        );
        assert!(message.contains("stripeCustomerId is empty"), "{message}");
        // An empty string outside keys is allowed.
        check("PutItem", &json!({"Item": {"userId": {"S": "m"}, "displayName": {"S": ""}}}))
            .unwrap();
    }

    #[test]
    fn reserved_words_must_go_through_placeholders() {
        let message = violation("Query", json!({"FilterExpression": "status = :s"}));
        assert!(message.contains("`status`"), "{message}");
        let message = violation("UpdateItem", json!({"UpdateExpression": "SET items = :v"}));
        assert!(message.contains("`items`"), "{message}");
        for fine in [
            "#s = :s AND attribute_exists(userId)",
            "SET ordersSyncedAt = :at, lastReconcile = :r REMOVE lastSyncError",
            "ADD orderCount :one",
            "#u = :u AND #k BETWEEN :lo AND :hi",
            "size(#n) > :n",
        ] {
            assert_eq!(reserved_word(fine), None, "{fine}");
        }
    }

    #[test]
    fn an_index_query_asks_only_for_what_the_index_holds() {
        let query = |index: &str, projection: &str| {
            json!({
                "TableName": "dev-OrderSnapshots",
                "IndexName": index,
                "KeyConditionExpression": "userId = :u",
                "ExpressionAttributeValues": { ":u": { "S": "m" } },
                "ExpressionAttributeNames": { "#s": "status" },
                "ProjectionExpression": projection,
            })
        };
        check("Query", &query("byCreated", "orderId, createdKey, #s, listing")).unwrap();
        let whole = violation("Query", query("byCreated", "orderId, #s, items"));
        assert!(whole.contains("does not hold `items`"), "{whole}");
        let profiles = json!({
            "TableName": "dev-UserProfiles",
            "IndexName": "byStripeCustomerId",
            "ProjectionExpression": "userId, stripeCustomerId, email",
        });
        assert!(violation("Scan", profiles).contains("does not hold `email`"));
    }

    #[test]
    fn transactions_hold_at_most_100_actions() {
        let put = json!({"Put": {"Item": {"userId": {"S": "m"}}}});
        let body = json!({"TransactItems": vec![put.clone(); 101]});
        assert!(violation("TransactWriteItems", body).contains("101 actions"));
        check("TransactWriteItems", &json!({"TransactItems": vec![put; 100]})).unwrap();
        // 11 items of 390 KB: each within 400 KB, together past 4 MB.
        let big =
            json!({"Put": {"Item": {"userId": {"S": "m"}, "b": {"S": "x".repeat(390 * 1024)}}}});
        let body = json!({"TransactItems": vec![big; 11]});
        assert!(violation("TransactWriteItems", body).contains("at most 4 MB"));
        // The actions inside are checked too.
        let bad = json!({"TransactItems": [{"Put": {"Item": {"orderId": {"S": ""}}}}]});
        assert!(violation("TransactWriteItems", bad).contains("orderId is empty"));
    }

    #[test]
    fn a_transaction_touches_each_item_once() {
        let claim = |customer: &str| {
            json!({"TableName": "p-StripeCustomers",
                "Key": {"stripeCustomerId": {"S": customer}}})
        };
        let put = json!({"Put": {"TableName": "p-StripeCustomers",
            "Item": {"stripeCustomerId": {"S": "cus_1"}, "userId": {"S": "m"}}}});
        let body = json!({"TransactItems": [put, {"Delete": claim("cus_1")}]});
        let message = violation("TransactWriteItems", body);
        assert!(message.contains("two actions on one item"), "{message}");
        let body = json!({"TransactItems": [put, {"Delete": claim("cus_2")}]});
        check("TransactWriteItems", &body).unwrap();
    }

    #[test]
    fn batches_hold_at_most_25_requests_and_their_keys_follow_the_rules() {
        let delete = |order: &str| json!({"DeleteRequest": {"Key": {"userId": {"S": "m"}, "orderId": {"S": order}}}});
        let body = json!({"RequestItems": {"p-OrderSnapshots": vec![delete("pi_1"); 26]}});
        assert!(violation("BatchWriteItem", body).contains("26 requests"));
        let body = json!({"RequestItems": {"p-OrderSnapshots": vec![delete("pi_1"); 25]}});
        check("BatchWriteItem", &body).unwrap();
        let body = json!({"RequestItems": {"p-OrderSnapshots": [delete("")]}});
        assert!(violation("BatchWriteItem", body).contains("orderId is empty"));
    }

    #[test]
    fn add_takes_a_number_or_a_set() {
        let update = |value: Value| {
            json!({
                "UpdateExpression": "SET expiresAt = :ttl ADD hits :one",
                "ExpressionAttributeValues": {":ttl": {"N": "60"}, ":one": value},
            })
        };
        let message = violation("UpdateItem", update(json!({"S": "1"})));
        assert!(message.contains("ADD operand :one"), "{message}");
        check("UpdateItem", &update(json!({"N": "1"}))).unwrap();
    }

    #[test]
    fn ttl_attributes_are_epoch_seconds() {
        let body =
            json!({"Item": {"eventId": {"S": "e"}, "expiresAt": {"S": "2026-12-01T00:00:00Z"}}});
        assert!(violation("PutItem", body).contains("expiresAt"));
        check(
            "PutItem",
            &json!({"Item": {"eventId": {"S": "e"}, "expiresAt": {"N": "1796083200"}}}),
        )
        .unwrap();
    }

    #[test]
    fn items_over_400_kb_are_refused() {
        let big = "x".repeat(MAX_ITEM_BYTES);
        let message =
            violation("PutItem", json!({"Item": {"userId": {"S": "m"}, "blob": {"S": big}}}));
        assert!(message.contains("bytes"), "{message}");
    }

    /// A Query or Scan page ends at 1 MB (`Query.Pagination.html`): every function that
    /// reads one follows `LastEvaluatedKey`, so nothing is silently cut off.
    #[test]
    fn every_query_and_scan_follows_last_evaluated_key() {
        let sources = [
            ("orders.rs", include_str!("orders.rs")),
            ("profiles.rs", include_str!("profiles.rs")),
            ("events.rs", include_str!("events.rs")),
        ];
        let mut reads = 0;
        for (file, source) in sources {
            for function in source.split("async fn ").skip(1) {
                let name = function.split('(').next().unwrap_or_default();
                if function.contains(".query()") || function.contains(".scan()") {
                    reads += 1;
                    assert!(
                        function.contains("last_evaluated_key"),
                        "{file}: {name} reads a Query or Scan page without following LastEvaluatedKey"
                    );
                }
            }
        }
        assert!(reads >= 4, "the check found the store's reads");
    }

    #[test]
    fn item_size_counts_as_dynamodb_does() {
        // From the developer guide's rules: names + values; numbers by significant digits.
        let item = json!({"a": {"S": "xyz"}, "n": {"N": "12300"}, "b": {"BOOL": true},
            "l": {"L": [{"S": "ab"}]}, "m": {"M": {"k": {"NULL": true}}}});
        let expected = (1 + 3) + (1 + 3) + (1 + 1) + (1 + 3 + 1 + 2) + (1 + 3 + 1 + 1 + 1);
        assert_eq!(item_size(item.as_object().unwrap()), expected);
    }
}
