//! Profile domain: first-read creation, optimistic-concurrency updates, and the audit record.

use crate::auth::Identity;
use crate::error::DomainError;
use crate::orders::OrderService;
use crate::storage::limits::{Counter, Spend};
use crate::storage::profiles::{
    AutoLinkRecord, EditableFields, LinkError, ProfileRecord, EDITABLE_ATTRIBUTES,
};
use crate::storage::Store;
use crate::stripe::StripeApi;
use crate::validate;
use dashboard_api::{ErrorCode, Profile, ProfilePatch, ProfileUpdate};
use serde_json::{json, Value};
use slog::{info, Logger};
use std::sync::Arc;

/// The member's profile, created from the token's claims on first read.
pub async fn get_or_create(
    store: &Store,
    identity: &Identity,
) -> Result<ProfileRecord, DomainError> {
    if let Some(item) = store.get_profile_any(&identity.user_id).await? {
        // Being erased: 404 until the erasure completes, then a fresh profile.
        if item.erasing_since.is_some() {
            return Err(DomainError::MemberNotFound);
        }
        return Ok(item);
    }
    let email = identity.email.as_deref().and_then(|e| validate::email(e).ok());
    let mut fresh = ProfileRecord::new(&identity.user_id, email.clone(), chrono::Utc::now());
    // Kept so that `dashboard-server backfill` knows which stored emails a token verified.
    fresh.verified_email = email.filter(|_| identity.email_verified);
    if store.create_profile(&fresh).await? {
        return Ok(fresh);
    }
    // A concurrent first read created it: return what was stored.
    store.get_profile(&identity.user_id).await?.ok_or_else(|| {
        DomainError::Store(crate::storage::StoreError::Internal(
            "profile vanished after a conflicting create".into(),
        ))
    })
}

/// The member's profile ([`get_or_create`]) and, with `DASHBOARD_AUTO_LINK=verified-email`,
/// the first link by verified email ([`auto_link`]); a new link starts a reconcile through the
/// order service's refresh path. The link's outcome is in the sync status, never an error here.
pub async fn get_or_create_linking(
    store: &Store,
    orders: &Arc<OrderService>,
    log: &Logger,
    identity: &Identity,
) -> Result<ProfileRecord, DomainError> {
    let profile = get_or_create(store, identity).await?;
    if !orders.limits().auto_link_verified_email {
        return Ok(profile);
    }
    match auto_link(store, orders.stripe(), log, identity, &profile).await {
        Some(linked) => {
            orders.request_refresh(&identity.user_id).await;
            Ok(linked)
        }
        None => Ok(profile),
    }
}

/// What [`auto_link`] found, as stored in the profile's `autoLink.outcome`.
pub mod auto_link_outcome {
    pub const PENDING: &str = "pending";
    pub const LINKED: &str = "linked";
    pub const NONE: &str = "none";
    pub const SEVERAL: &str = "several";
    pub const TAKEN: &str = "taken";
    pub const FAILED: &str = "failed";
    /// An operator linked the member while the look-up ran; nothing was changed.
    pub const ALREADY_LINKED: &str = "already_linked";
}

/// The first link by verified email: when the member holds no customer, was never tried, and
/// the token says `email_verified: true`, asks Stripe for the customers with exactly that email
/// and links the one there is, unless another member holds it (the admin link's path, so the
/// claim table decides). The try is claimed on the profile before Stripe is asked (a
/// conditional write), so each member costs at most one Stripe request, ever, however often or
/// concurrently the profile is read. Returns the linked profile when it linked.
pub async fn auto_link(
    store: &Store,
    stripe: &StripeApi,
    log: &Logger,
    identity: &Identity,
    profile: &ProfileRecord,
) -> Option<ProfileRecord> {
    use auto_link_outcome as outcome;
    if profile.stripe_customer_id.is_some() || profile.auto_link.is_some() {
        return None;
    }
    if !identity.email_verified {
        return None;
    }
    let email = validate::email(identity.email.as_deref()?).ok()?;
    let user_id = &identity.user_id;
    match store.claim_auto_link(user_id, &email, chrono::Utc::now()).await {
        Ok(true) => {}
        Ok(false) => return None,
        Err(error) => {
            slog::warn!(log, "could not claim the first link by email"; "user_id" => user_id,
                "error" => error.to_string());
            return None;
        }
    }
    // Two ids are enough to tell one match from several.
    let (result, customer, linked) = match stripe.customers_by_email(&email, 2).await {
        Ok(ids) if ids.is_empty() => (outcome::NONE, None, None),
        Ok(ids) if ids.len() > 1 => (outcome::SEVERAL, None, None),
        Ok(ids) => {
            let customer = ids.into_iter().next();
            match link_unlinked(store, user_id, customer.as_deref().unwrap_or_default()).await {
                Ok(Some(linked)) => (outcome::LINKED, customer, Some(linked)),
                Ok(None) => (outcome::ALREADY_LINKED, customer, None),
                Err(DomainError::CustomerAlreadyLinked) => (outcome::TAKEN, customer, None),
                Err(error) => {
                    slog::warn!(log, "first link by email failed"; "user_id" => user_id,
                        "error" => format!("{error:?}"));
                    (outcome::FAILED, customer, None)
                }
            }
        }
        Err(error) => {
            slog::warn!(log, "first link by email: Stripe look-up failed"; "user_id" => user_id,
                "error" => error.to_string());
            (outcome::FAILED, None, None)
        }
    };
    info!(log, "first link by verified email"; "user_id" => user_id, "outcome" => result,
        "stripe_customer_id" => customer.as_deref());
    let record = AutoLinkRecord { at: chrono::Utc::now(), outcome: result.to_string(), customer };
    if let Err(error) = store.record_auto_link(user_id, &record).await {
        slog::warn!(log, "could not record the first link by email"; "user_id" => user_id,
            "error" => error.to_string());
    }
    linked
}

/// Replaces the editable fields if `if_match` names the current version.
///
/// The body is validated first: an invalid one is 400 whatever `If-Match` says, as a body that
/// does not parse already is (Dropshot reads it before the handler runs). So a client learns
/// about its own mistakes before it is sent to reload the profile.
pub async fn update(
    store: &Store,
    log: &Logger,
    identity: &Identity,
    if_match: Option<&str>,
    update: ProfileUpdate,
    writes_per_minute: u32,
) -> Result<ProfileRecord, DomainError> {
    let fields = validate::profile_update(update)?;
    let expected = parse_if_match(if_match)?;
    spend_write(store, identity, writes_per_minute).await?;
    write(store, log, identity, expected, fields).await
}

/// Spends one of the member's profile writes of this minute (a conditional counter in the
/// store, shared by every instance), or answers 429 `rate_limited`. Only requests that reach
/// the write count: an invalid body or a missing `If-Match` writes nothing.
pub(crate) async fn spend_write(
    store: &Store,
    identity: &Identity,
    per_minute: u32,
) -> Result<(), DomainError> {
    let now = chrono::Utc::now().timestamp();
    match store.spend(Counter::ProfileWrites, &identity.user_id, per_minute, now).await? {
        Spend::Granted => Ok(()),
        Spend::Refused { retry_after_seconds } => {
            Err(DomainError::RateLimited { retry_after_seconds })
        }
    }
}

/// Applies a JSON Merge Patch (RFC 7396) to the editable fields if `if_match` names the current
/// version. The patched fields are checked as a whole, as a `PUT` body is, and before
/// `If-Match`, for the same reason. A patch that changes nothing writes nothing (no new
/// version, no audit record) but still needs the current `If-Match`.
pub async fn patch(
    store: &Store,
    log: &Logger,
    identity: &Identity,
    if_match: Option<&str>,
    patch: ProfilePatch,
    writes_per_minute: u32,
) -> Result<ProfileRecord, DomainError> {
    let current = store.get_profile(&identity.user_id).await?;
    let base = current.as_ref().map(ProfileRecord::editable).unwrap_or_default();
    let fields = validate::profile_update(patched(base, &patch)?)?;
    let expected = parse_if_match(if_match)?;
    match current {
        Some(current) if current.version == expected && current.editable() == fields => Ok(current),
        // The conditional write refuses a version that moved since the read.
        Some(current) if current.version == expected => {
            spend_write(store, identity, writes_per_minute).await?;
            write(store, log, identity, expected, fields).await
        }
        _ => Err(DomainError::PreconditionFailed),
    }
}

/// Writes `fields` over version `expected` and records the change.
async fn write(
    store: &Store,
    log: &Logger,
    identity: &Identity,
    expected: u64,
    fields: EditableFields,
) -> Result<ProfileRecord, DomainError> {
    let now = chrono::Utc::now();
    let old = store.update_profile(&identity.user_id, expected, &fields, now).await?;
    audit(log, identity, &old.editable(), &fields, now);
    Ok(old.with_editable(fields, now))
}

/// The editable fields as a `PUT` body.
fn to_update(fields: EditableFields) -> ProfileUpdate {
    ProfileUpdate {
        email: fields.email,
        display_name: fields.display_name,
        shipping_address: fields.shipping_address.map(Into::into),
        preferred_wallet: fields.preferred_wallet,
        avatar_url: fields.avatar_url,
        dashboard_settings: Some(fields.dashboard_settings.into()),
    }
}

/// The `PUT` body that `patch` makes of `base`: `base` as a document, the patch merged in.
fn patched(base: EditableFields, patch: &ProfilePatch) -> Result<ProfileUpdate, DomainError> {
    let mut document = serde_json::to_value(to_update(base)).expect("an update serialises");
    // `None` members are skipped and `Some(None)` is `null`: the patch document as sent.
    merge_patch(&mut document, serde_json::to_value(patch).expect("a patch serialises"));
    // Merging removes what a patch sets to null; to a PUT body, absent and null differ, and
    // null is what the patch meant (also for the optional parts a new address leaves out).
    let nullable: [(&str, &[&str]); 2] =
        [("", &EDITABLE_ATTRIBUTES), ("/shippingAddress", &["line2", "region"])];
    for (pointer, members) in nullable {
        if let Some(object) = document.pointer_mut(pointer).and_then(Value::as_object_mut) {
            for member in members {
                object.entry(*member).or_insert(Value::Null);
            }
        }
    }
    dashboard_api::from_json_value(document).map_err(|error| {
        let path = error.path().to_string();
        let message = error.inner().to_string();
        let missing = message.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`'));
        match missing {
            // Only the parts of an address the patch created can be missing: the base has
            // every field.
            Some(name) => DomainError::Invalid {
                code: ErrorCode::MissingField,
                field: if path == "." { name.to_string() } else { format!("{path}.{name}") },
                message: if path == "shippingAddress" {
                    "is missing: a new shippingAddress needs line1, city, postalCode and country"
                        .to_string()
                } else {
                    "is missing".to_string()
                },
            },
            None => DomainError::Invalid { code: ErrorCode::InvalidBody, field: path, message },
        }
    })
}

/// RFC 7396, section 2 (https://www.rfc-editor.org/rfc/rfc7396#section-2): objects merge
/// member by member, `null` removes a member, anything else replaces the target.
fn merge_patch(target: &mut Value, patch: Value) {
    let Value::Object(members) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let object = target.as_object_mut().expect("an object");
    for (name, value) in members {
        if value.is_null() {
            object.remove(&name);
        } else {
            merge_patch(object.entry(name).or_insert(Value::Null), value);
        }
    }
}

/// A strong ETag from the stored version.
pub fn etag(item: &ProfileRecord) -> String {
    format!("\"{}\"", item.version)
}

pub(crate) fn parse_if_match(value: Option<&str>) -> Result<u64, DomainError> {
    let value = value.map(str::trim).filter(|v| !v.is_empty());
    let value = value.ok_or(DomainError::PreconditionRequired)?;
    // `*` would match any version and defeat the point of the precondition.
    if value == "*" {
        return Err(DomainError::PreconditionRequired);
    }
    // Weak tags never match in a strong comparison; neither does anything we did not issue.
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .and_then(|v| v.parse().ok())
        .ok_or(DomainError::PreconditionFailed)
}

pub fn to_api(item: ProfileRecord) -> Profile {
    Profile {
        user_id: item.user_id,
        email: item.email,
        display_name: item.display_name,
        shipping_address: item.shipping_address.map(Into::into),
        preferred_wallet: item.preferred_wallet,
        avatar_url: item.avatar_url,
        dashboard_settings: item.dashboard_settings.into(),
        stripe_customer_id: item.stripe_customer_id,
        total_orders: item.order_count,
        created_at: item.created_at,
        updated_at: item.updated_at,
    }
}

/// One structured record per successful update: who, when, which fields changed, and their old
/// and new values masked (`AUDITED`): no personal value is ever logged in clear.
fn audit(
    log: &Logger,
    identity: &Identity,
    old: &EditableFields,
    new: &EditableFields,
    at: chrono::DateTime<chrono::Utc>,
) {
    let changes = diff(old, new);
    let fields: Vec<String> = changes.keys().cloned().collect();
    info!(log, "profile updated";
        "record_type" => "audit",
        "action" => "profile.update",
        "user_id" => &identity.user_id,
        "at" => at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "changed_fields" => fields.join(","),
        "changes" => slog::Serde(Value::Object(changes)),
    );
}

/// How an audited value is written in the record.
#[derive(Clone, Copy, Debug)]
enum Mask {
    /// Not personal (dashboard preferences): in clear.
    Clear,
    /// `a***@e***.com`: enough to tell two addresses apart by eye, not to recover either.
    Email,
    /// The first character and `***` (only `***` under 4 characters).
    Text,
    /// `0x5a…ed`: 4 of 40 hex digits, far too few to find the address on a chain.
    Wallet,
    /// The scheme only: host and path can name the member.
    Url,
}

/// Every editable value by its path in a `PUT` body, and how the audit record writes it.
///
/// Masks rather than hashes: a plain hash of an email, a postal code or a country is reversed
/// by trying the likely values, and a keyed hash needs a key kept and rotated like any secret
/// for little gain; the record's job is who changed which field when, and a mask lets a
/// person recognise a value they already know without the log disclosing it.
const AUDITED: [(&str, Mask); 14] = [
    ("email", Mask::Email),
    ("displayName", Mask::Text),
    ("shippingAddress.line1", Mask::Text),
    ("shippingAddress.line2", Mask::Text),
    ("shippingAddress.city", Mask::Text),
    ("shippingAddress.region", Mask::Text),
    ("shippingAddress.postalCode", Mask::Text),
    ("shippingAddress.country", Mask::Text),
    ("preferredWallet", Mask::Wallet),
    ("avatarUrl", Mask::Url),
    ("dashboardSettings.theme", Mask::Clear),
    ("dashboardSettings.emailNotifications", Mask::Clear),
    ("dashboardSettings.ordersPageSize", Mask::Clear),
    ("dashboardSettings.locale", Mask::Clear),
];

/// Changed values by path (nested objects part by part) with their old and new values masked.
pub fn diff(old: &EditableFields, new: &EditableFields) -> serde_json::Map<String, Value> {
    let document = |f: &EditableFields| serde_json::to_value(to_update(f.clone())).expect("JSON");
    let (old, new) = (document(old), document(new));
    let mut changes = serde_json::Map::new();
    for (path, how) in AUDITED {
        let pointer = format!("/{}", path.replace('.', "/"));
        let before = old.pointer(&pointer).unwrap_or(&Value::Null);
        let after = new.pointer(&pointer).unwrap_or(&Value::Null);
        if before != after {
            changes.insert(
                path.to_string(),
                json!({ "old": mask(how, before), "new": mask(how, after) }),
            );
        }
    }
    changes
}

fn mask(how: Mask, value: &Value) -> Value {
    let text = match (how, value) {
        (Mask::Clear, _) | (_, Value::Null) => return value.clone(),
        (_, Value::String(text)) => text.as_str(),
        // Every personal field is a string; anything else is hidden whole.
        _ => return json!("***"),
    };
    let first = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
    let masked = match how {
        Mask::Email => match text.rsplit_once('@') {
            Some((local, domain)) => {
                let top = domain.rsplit_once('.').map(|(_, top)| format!(".{top}"));
                format!("{}***@{}***{}", first(local), first(domain), top.unwrap_or_default())
            }
            None => "***".to_string(),
        },
        Mask::Text if text.chars().count() >= 4 => format!("{}***", first(text)),
        Mask::Wallet if text.len() == 42 && text.is_ascii() => {
            format!("{}…{}", &text[..4], &text[text.len() - 2..])
        }
        Mask::Url => match text.split_once("://") {
            Some((scheme, _)) if scheme.chars().all(|c| c.is_ascii_alphabetic()) => {
                format!("{scheme}://***")
            }
            _ => "***".to_string(),
        },
        _ => "***".to_string(),
    };
    json!(masked)
}

/// Links a member to a Stripe customer (admin): one member per customer, and only a member
/// who has a profile. Linking the member to the customer it holds is a no-op (200 again).
///
/// After the link, the member's cached orders of any other customer are deleted (a relink
/// leaves none of the old customer's orders with the member). That runs after the transaction,
/// so a crash in between leaves them in the table; they stay out of sight (the listing and the
/// detail show only orders of the customer the profile holds now, and no order of the old
/// customer can be cached for the member any more: `Store::insert_order`), and the next link
/// call for the member deletes them.
pub async fn link(
    store: &Store,
    user_id: &str,
    customer: &str,
) -> Result<ProfileRecord, DomainError> {
    validate::user_id("userId", user_id)?;
    validate::stripe_customer_id(customer)?;
    let linked = store.link_customer(user_id, customer).await;
    finish_link(store, user_id, customer, linked).await
}

/// Links as [`link`] does, only while the member holds no other customer (automatic links:
/// never over an operator's); `None` when it holds one.
pub async fn link_unlinked(
    store: &Store,
    user_id: &str,
    customer: &str,
) -> Result<Option<ProfileRecord>, DomainError> {
    validate::user_id("userId", user_id)?;
    validate::stripe_customer_id(customer)?;
    match store.link_unlinked(user_id, customer).await {
        Err(LinkError::MemberLinked) => Ok(None),
        linked => finish_link(store, user_id, customer, linked).await.map(Some),
    }
}

async fn finish_link(
    store: &Store,
    user_id: &str,
    customer: &str,
    linked: Result<crate::storage::profiles::Linked, LinkError>,
) -> Result<ProfileRecord, DomainError> {
    let linked = match linked {
        Ok(linked) => linked,
        Err(LinkError::NoMember) => return Err(DomainError::MemberNotFound),
        Err(LinkError::CustomerTaken) => return Err(DomainError::CustomerAlreadyLinked),
        // Only `link_unlinked` refuses so, and its caller answers it.
        Err(LinkError::MemberLinked) => return Err(DomainError::CustomerAlreadyLinked),
        Err(LinkError::Store(error)) => return Err(error.into()),
    };
    store.delete_orders_except(user_id, Some(customer)).await?;
    Ok(linked.profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_masks_every_personal_value() {
        let old = EditableFields { email: Some("alice@example.com".into()), ..Default::default() };
        let new = EditableFields {
            email: Some("bob@mail.example.org".into()),
            display_name: Some("Bob".into()),
            preferred_wallet: Some("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".into()),
            avatar_url: Some("https://bob.example/me.png".into()),
            shipping_address: Some(crate::storage::profiles::AddressRecord {
                line1: "1 Long Road".into(),
                city: "Leeds".into(),
                postal_code: "LS1 1AA".into(),
                country: "GB".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let changes = diff(&old, &new);
        let expected = json!({
            "email": {"old": "a***@e***.com", "new": "b***@m***.org"},
            "displayName": {"old": null, "new": "***"},
            "preferredWallet": {"old": null, "new": "0x5a…ed"},
            "avatarUrl": {"old": null, "new": "https://***"},
            "shippingAddress.line1": {"old": null, "new": "1***"},
            "shippingAddress.city": {"old": null, "new": "L***"},
            "shippingAddress.postalCode": {"old": null, "new": "L***"},
            "shippingAddress.country": {"old": null, "new": "***"},
        });
        assert_eq!(Value::Object(changes), expected);
    }

    /// Every value of a `PUT` body is in `AUDITED`, so a field added later cannot be left out
    /// of the record (or logged in clear by default).
    #[test]
    fn every_editable_value_is_audited() {
        let full = ProfileUpdate {
            shipping_address: Some(dashboard_api::ShippingAddress {
                line1: "a".into(),
                line2: None,
                city: "b".into(),
                region: None,
                postal_code: "1".into(),
                country: "GB".into(),
            }),
            dashboard_settings: Some(Default::default()),
            ..Default::default()
        };
        let document = serde_json::to_value(full).unwrap();
        let mut paths = Vec::new();
        for (key, value) in document.as_object().unwrap() {
            match value.as_object() {
                Some(parts) => paths.extend(parts.keys().map(|part| format!("{key}.{part}"))),
                None => paths.push(key.clone()),
            }
        }
        paths.sort();
        let mut audited: Vec<String> = AUDITED.iter().map(|(p, _)| p.to_string()).collect();
        audited.sort();
        assert_eq!(paths, audited);
    }

    /// The examples of RFC 7396, appendix A.
    #[test]
    fn merge_patch_follows_rfc_7396() {
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (json!({"a":"b","b":"c"}), json!({"a":null}), json!({"b":"c"})),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (json!({"a":{"b":"c"}}), json!({"a":{"b":"d","c":null}}), json!({"a":{"b":"d"}})),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"a":"foo"}), json!("bar"), json!("bar")),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (json!({}), json!({"a":{"bb":{"ccc":null}}}), json!({"a":{"bb":{}}})),
        ];
        for (target, patch, expected) in cases {
            let mut merged = target.clone();
            merge_patch(&mut merged, patch.clone());
            assert_eq!(merged, expected, "{target} + {patch}");
        }
    }

    #[test]
    fn a_patch_fills_what_it_leaves_out_from_the_base() {
        let base = EditableFields { email: Some("a@b.co".into()), ..Default::default() };
        let patch: ProfilePatch = serde_json::from_value(json!({
            "displayName": "Ada",
            "shippingAddress": {"line1": "1 Row", "city": "Leeds", "postalCode": "LS1",
                "country": "GB"}
        }))
        .unwrap();
        let update = patched(base.clone(), &patch).unwrap();
        assert_eq!(update.email.as_deref(), Some("a@b.co"));
        assert_eq!(update.display_name.as_deref(), Some("Ada"));
        assert_eq!(update.shipping_address.unwrap().line2, None);
        let partial: ProfilePatch =
            serde_json::from_value(json!({"shippingAddress": {"city": "Leeds"}})).unwrap();
        match patched(base, &partial) {
            Err(DomainError::Invalid { code: ErrorCode::MissingField, field, .. }) => {
                assert_eq!(field, "shippingAddress.line1")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn if_match_parsing() {
        assert!(matches!(parse_if_match(None), Err(DomainError::PreconditionRequired)));
        assert!(matches!(parse_if_match(Some("*")), Err(DomainError::PreconditionRequired)));
        assert!(matches!(parse_if_match(Some("W/\"3\"")), Err(DomainError::PreconditionFailed)));
        assert!(matches!(parse_if_match(Some("3")), Err(DomainError::PreconditionFailed)));
        assert_eq!(parse_if_match(Some("\"3\"")).unwrap(), 3);
    }
}
