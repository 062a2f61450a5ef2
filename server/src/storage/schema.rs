//! Table definitions as data: the server creates them locally from here, and the deployment
//! template is checked against the same definitions.

use aws_sdk_dynamodb::client::Waiters as _;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    LocalSecondaryIndex, Projection, ProjectionType, ScalarAttributeType,
};

/// One key attribute: its name and DynamoDB scalar type (`S` or `N`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub name: &'static str,
    pub kind: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: &'static str,
    pub partition: Key,
    pub sort: Option<Key>,
    pub projection: IndexProjection,
}

/// What an index holds besides its own keys and the table's: an index's reads cost by the size
/// of what it holds (`LSI.html#LSI.ThroughputConsiderations`), so each holds only what its
/// queries read. A local index can never be changed once its table exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexProjection {
    KeysOnly,
    /// These non-key attributes too.
    Include(&'static [&'static str]),
    /// Every attribute (none of ours: the template check names it if one appears).
    All,
}

impl IndexProjection {
    /// Whether `attribute` can be read from the index (`table_keys` are always there).
    pub fn holds(&self, attribute: &str) -> bool {
        match self {
            IndexProjection::KeysOnly => false,
            IndexProjection::Include(attributes) => attributes.contains(&attribute),
            IndexProjection::All => true,
        }
    }

    fn to_sdk(self) -> Projection {
        let builder = Projection::builder();
        let builder = match self {
            IndexProjection::KeysOnly => builder.projection_type(ProjectionType::KeysOnly),
            IndexProjection::Include(attributes) => {
                attributes.iter().fold(builder.projection_type(ProjectionType::Include), |b, a| {
                    b.non_key_attributes(*a)
                })
            }
            IndexProjection::All => builder.projection_type(ProjectionType::All),
        };
        builder.build()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSpec {
    /// Name without the configured prefix.
    pub base_name: &'static str,
    pub partition: Key,
    pub sort: Option<Key>,
    pub global_indexes: Vec<IndexSpec>,
    /// Local indexes share the table's partition key; only their sort key is given.
    pub local_indexes: Vec<IndexSpec>,
    pub ttl_attribute: Option<&'static str>,
}

pub const USER_PROFILES: &str = "UserProfiles";
pub const BY_STRIPE_CUSTOMER: &str = "byStripeCustomerId";
pub const ORDER_SNAPSHOTS: &str = "OrderSnapshots";
/// Newest-first listing: sort key `createdKey` = zero-padded creation time + `#` + order id.
pub const BY_CREATED: &str = "byCreated";
/// An order's listing entry: its summary (with `createdKey`, `expiresAt` and the customer) as
/// one JSON string, written with every order. A listing reads this one attribute per order:
/// as twelve attributes, the SDK's parsing of twelve typed values per order into maps, and
/// their conversion, were the largest part of a listing's CPU (perf, issue 14).
pub const LISTING_ENTRY: &str = "listing";
/// What `byCreated` holds besides the keys (`userId`, `orderId`, `createdKey`): the listing
/// entry, and `status` for the listing's status filter (a FilterExpression reads attributes,
/// not the entry's JSON). A listing reads 20 of these instead of 20 whole orders.
pub const BY_CREATED_ATTRIBUTES: &[&str] = &[LISTING_ENTRY, "status"];
/// The `orderId` of a member's listing state: one item in the member's `OrderSnapshots`
/// partition holding what a listing needs of the profile (the customer and when its orders
/// were last synced), so that a listing's first page reads it in its own Query instead of a
/// second call (issue 14). It exists only while the member is linked, and every write of those
/// profile attributes writes or deletes it in the same transaction. No order id has this form
/// (every order is a PaymentIntent, `pi_…`).
pub const LISTING_STATE_ID: &str = "listing-state";
/// Its `createdKey`: above every order's (`<12 digits>#…`), so a newest-first Query of
/// `byCreated` returns it first, and only to a page without an upper bound.
pub const LISTING_STATE_KEY: &str = "~";
pub const STRIPE_EVENTS: &str = "StripeEvents";
/// One item per linked Stripe customer, naming its member: the uniqueness claim that makes
/// "one member per customer" a conditional write rather than an index lookup.
pub const STRIPE_CUSTOMERS: &str = "StripeCustomers";

/// Every table the server uses.
pub fn tables() -> Vec<TableSpec> {
    vec![
        TableSpec {
            base_name: USER_PROFILES,
            partition: Key { name: "userId", kind: "S" },
            sort: None,
            global_indexes: vec![IndexSpec {
                name: BY_STRIPE_CUSTOMER,
                partition: Key { name: "stripeCustomerId", kind: "S" },
                sort: None,
                // It maps a customer to its member: the keys are all it is read for.
                projection: IndexProjection::KeysOnly,
            }],
            local_indexes: vec![],
            ttl_attribute: None,
        },
        TableSpec {
            base_name: ORDER_SNAPSHOTS,
            partition: Key { name: "userId", kind: "S" },
            sort: Some(Key { name: "orderId", kind: "S" }),
            global_indexes: vec![],
            local_indexes: vec![IndexSpec {
                name: BY_CREATED,
                partition: Key { name: "userId", kind: "S" },
                sort: Some(Key { name: "createdKey", kind: "S" }),
                projection: IndexProjection::Include(BY_CREATED_ATTRIBUTES),
            }],
            ttl_attribute: Some("expiresAt"),
        },
        // The processed-event ledger: kept longer than Stripe's 3-day retry window.
        TableSpec {
            base_name: STRIPE_EVENTS,
            partition: Key { name: "eventId", kind: "S" },
            sort: None,
            global_indexes: vec![],
            local_indexes: vec![],
            ttl_attribute: Some("expiresAt"),
        },
        // Its own table rather than a `customer#<id>` item among the profiles: a member id may
        // be any 1 to 128 characters, so no prefix in `userId` is safe from a real member, and
        // claim items would have to stay out of the profile index and its scans.
        TableSpec {
            base_name: STRIPE_CUSTOMERS,
            partition: Key { name: "stripeCustomerId", kind: "S" },
            sort: None,
            global_indexes: vec![],
            local_indexes: vec![],
            ttl_attribute: None,
        },
    ]
}

fn key_element(key: &Key, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(key.name)
        .key_type(key_type)
        .build()
        .expect("key schema element has its required fields")
}

fn key_schema(partition: &Key, sort: Option<&Key>) -> Vec<KeySchemaElement> {
    let mut keys = vec![key_element(partition, KeyType::Hash)];
    keys.extend(sort.map(|s| key_element(s, KeyType::Range)));
    keys
}

impl TableSpec {
    /// Every attribute that appears in a key of the table or an index, once.
    fn attribute_definitions(&self) -> Vec<AttributeDefinition> {
        let mut keys = vec![self.partition];
        keys.extend(self.sort);
        for index in self.global_indexes.iter().chain(&self.local_indexes) {
            keys.push(index.partition);
            keys.extend(index.sort);
        }
        let mut seen = std::collections::BTreeSet::new();
        keys.into_iter()
            .filter(|k| seen.insert(k.name))
            .map(|k| {
                AttributeDefinition::builder()
                    .attribute_name(k.name)
                    .attribute_type(ScalarAttributeType::from(k.kind))
                    .build()
                    .expect("attribute definition has its required fields")
            })
            .collect()
    }

    /// Sends CreateTable for this spec under `name`.
    pub async fn create(
        &self,
        client: &aws_sdk_dynamodb::Client,
        name: &str,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let indexes: Vec<GlobalSecondaryIndex> = self
            .global_indexes
            .iter()
            .map(|index| {
                GlobalSecondaryIndex::builder()
                    .index_name(index.name)
                    .set_key_schema(Some(key_schema(&index.partition, index.sort.as_ref())))
                    .projection(index.projection.to_sdk())
                    .build()
                    .expect("index has its required fields")
            })
            .collect();
        let local: Vec<LocalSecondaryIndex> = self
            .local_indexes
            .iter()
            .map(|index| {
                LocalSecondaryIndex::builder()
                    .index_name(index.name)
                    .set_key_schema(Some(key_schema(&index.partition, index.sort.as_ref())))
                    .projection(index.projection.to_sdk())
                    .build()
                    .expect("index has its required fields")
            })
            .collect();
        client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(key_schema(&self.partition, self.sort.as_ref())))
            .set_attribute_definitions(Some(self.attribute_definitions()))
            .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
            .set_local_secondary_indexes((!local.is_empty()).then_some(local))
            .send()
            .await?;
        // Emulators answer ACTIVE at once; AWS takes seconds to minutes.
        client
            .wait_until_table_exists()
            .table_name(name)
            .wait(std::time::Duration::from_secs(600))
            .await?;
        if let Some(attribute) = self.ttl_attribute {
            client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(
                    aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                        .attribute_name(attribute)
                        .enabled(true)
                        .build()
                        .expect("TTL specification has its required fields"),
                )
                .send()
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_yaml::Value;

    /// `!Sub "${Stage}-Name"` (or a plain string) to `Name`.
    fn base_name(value: &Value) -> String {
        let text = match value {
            Value::Tagged(tagged) => tagged.value.as_str().unwrap_or_default().to_string(),
            other => other.as_str().unwrap_or_default().to_string(),
        };
        text.rsplit('-').next().unwrap_or_default().to_string()
    }

    fn keys(schema: &Value, definitions: &Value) -> (Key, Option<Key>) {
        let kind = |name: &str| -> &'static str {
            let found = definitions
                .as_sequence()
                .unwrap()
                .iter()
                .find(|d| d["AttributeName"].as_str() == Some(name))
                .unwrap_or_else(|| panic!("{name} has no attribute definition"));
            match found["AttributeType"].as_str() {
                Some("S") => "S",
                Some("N") => "N",
                other => panic!("unexpected type {other:?}"),
            }
        };
        let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
        let mut hash = None;
        let mut range = None;
        for element in schema.as_sequence().unwrap() {
            let name = element["AttributeName"].as_str().unwrap();
            let key = Key { name: leak(name), kind: kind(name) };
            match element["KeyType"].as_str() {
                Some("HASH") => hash = Some(key),
                Some("RANGE") => range = Some(key),
                other => panic!("unexpected key type {other:?}"),
            }
        }
        (hash.expect("a partition key"), range)
    }

    fn leak(s: &str) -> &'static str {
        Box::leak(s.to_string().into_boxed_str())
    }

    fn indexes(list: &Value, definitions: &Value) -> Vec<IndexSpec> {
        let mut indexes: Vec<IndexSpec> = list
            .as_sequence()
            .map(|l| l.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|index| {
                let (partition, sort) = keys(&index["KeySchema"], definitions);
                let projection = &index["Projection"];
                let projection = match projection["ProjectionType"].as_str() {
                    Some("KEYS_ONLY") => IndexProjection::KeysOnly,
                    Some("ALL") => IndexProjection::All,
                    Some("INCLUDE") => IndexProjection::Include(Box::leak(
                        projection["NonKeyAttributes"]
                            .as_sequence()
                            .expect("INCLUDE names its attributes")
                            .iter()
                            .map(|a| leak(a.as_str().unwrap()))
                            .collect::<Vec<_>>()
                            .into_boxed_slice(),
                    )),
                    other => panic!("unexpected projection {other:?}"),
                };
                let name = leak(index["IndexName"].as_str().unwrap());
                IndexSpec { name, partition, sort, projection }
            })
            .collect();
        indexes.sort_by_key(|i| i.name);
        indexes
    }

    /// The deployment template and the tables the server creates locally are the same tables.
    #[test]
    fn infra_template_declares_the_same_tables() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml");
        let template: Value =
            serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut declared: Vec<TableSpec> = template["Resources"]
            .as_mapping()
            .unwrap()
            .values()
            .filter(|r| r["Type"].as_str() == Some("AWS::DynamoDB::Table"))
            .map(|resource| {
                let p = &resource["Properties"];
                let definitions = &p["AttributeDefinitions"];
                let (partition, sort) = keys(&p["KeySchema"], definitions);
                let ttl = p["TimeToLiveSpecification"]["AttributeName"].as_str();
                assert_eq!(
                    p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
                    Some(true)
                );
                assert_eq!(p["SSESpecification"]["SSEEnabled"].as_bool(), Some(true));
                assert_eq!(p["DeletionProtectionEnabled"].as_bool(), Some(true));
                TableSpec {
                    base_name: Box::leak(base_name(&p["TableName"]).into_boxed_str()),
                    partition,
                    sort,
                    global_indexes: indexes(&p["GlobalSecondaryIndexes"], definitions),
                    local_indexes: indexes(&p["LocalSecondaryIndexes"], definitions),
                    ttl_attribute: ttl.map(|t| &*Box::leak(t.to_string().into_boxed_str())),
                }
            })
            .collect();
        declared.sort_by_key(|t| t.base_name);
        let mut expected = tables();
        for table in &mut expected {
            table.global_indexes.sort_by_key(|i| i.name);
            table.local_indexes.sort_by_key(|i| i.name);
        }
        expected.sort_by_key(|t| t.base_name);
        assert_eq!(declared, expected);
    }
}
