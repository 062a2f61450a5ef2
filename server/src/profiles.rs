//! Profile domain: first-read creation, optimistic-concurrency updates, and the audit record.

use crate::auth::Identity;
use crate::error::DomainError;
use crate::storage::profiles::{EditableFields, ProfileRecord, EDITABLE_ATTRIBUTES};
use crate::storage::{Store, StoreError};
use crate::validate;
use dashboard_api::{Profile, ProfileUpdate};
use serde_json::{json, Value};
use slog::{info, Logger};

/// The member's profile, created from the token's claims on first read.
pub async fn get_or_create(
    store: &Store,
    identity: &Identity,
) -> Result<ProfileRecord, DomainError> {
    if let Some(item) = store.get_profile(&identity.user_id).await? {
        return Ok(item);
    }
    let email = identity.email.as_deref().and_then(|e| validate::email(e).ok());
    let fresh = ProfileRecord::new(&identity.user_id, email, chrono::Utc::now());
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
) -> Result<ProfileRecord, DomainError> {
    let fields = validate::profile_update(update)?;
    let expected = parse_if_match(if_match)?;
    let now = chrono::Utc::now();
    let old = store.update_profile(&identity.user_id, expected, &fields, now).await?;
    audit(log, identity, &old.editable(), &fields, now);
    Ok(old.with_editable(fields, now))
}

/// A strong ETag from the stored version.
pub fn etag(item: &ProfileRecord) -> String {
    format!("\"{}\"", item.version)
}

fn parse_if_match(value: Option<&str>) -> Result<u64, DomainError> {
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

/// One structured record per successful update: who, when, what changed (email and wallet
/// masked).
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

/// Changed fields with their old and new values, sensitive ones masked.
pub fn diff(old: &EditableFields, new: &EditableFields) -> serde_json::Map<String, Value> {
    let old = serde_json::to_value(old).expect("fields serialise");
    let new = serde_json::to_value(new).expect("fields serialise");
    let mut changes = serde_json::Map::new();
    for field in EDITABLE_ATTRIBUTES {
        let (before, after) = (&old[field], &new[field]);
        if before != after {
            changes.insert(
                field.to_string(),
                json!({ "old": mask(field, before), "new": mask(field, after) }),
            );
        }
    }
    changes
}

fn mask(field: &str, value: &Value) -> Value {
    let Some(text) = value.as_str() else { return value.clone() };
    match field {
        "email" => match text.split_once('@') {
            Some((local, domain)) => {
                let first: String = local.chars().take(1).collect();
                json!(format!("{first}***@{domain}"))
            }
            None => json!("***"),
        },
        "preferredWallet" if text.len() > 10 => {
            json!(format!("{}…{}", &text[..6], &text[text.len() - 4..]))
        }
        "preferredWallet" => json!("***"),
        _ => value.clone(),
    }
}

/// Links a member to a Stripe customer (admin): one member per customer, and only a member
/// who has a profile.
pub async fn link(
    store: &Store,
    user_id: &str,
    customer: &str,
) -> Result<ProfileRecord, DomainError> {
    validate::user_id("userId", user_id)?;
    validate::stripe_customer_id(customer)?;
    if let Some(owner) = store.member_for_customer(customer).await? {
        if owner != user_id {
            return Err(DomainError::CustomerAlreadyLinked);
        }
    }
    match store.link_customer(user_id, customer).await {
        Ok(profile) => Ok(profile),
        Err(StoreError::ConditionFailed) => Err(DomainError::MemberNotFound),
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_masks_email_and_wallet() {
        let old = EditableFields { email: Some("alice@example.com".into()), ..Default::default() };
        let new = EditableFields {
            email: Some("bob@example.org".into()),
            preferred_wallet: Some("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".into()),
            display_name: None,
            ..Default::default()
        };
        let changes = diff(&old, &new);
        assert_eq!(changes.len(), 2);
        assert_eq!(changes["email"], json!({"old": "a***@example.com", "new": "b***@example.org"}));
        assert_eq!(changes["preferredWallet"], json!({"old": null, "new": "0x5aAe…eAed"}));
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
