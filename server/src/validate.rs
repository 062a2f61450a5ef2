//! Validation of the editable profile fields. Each rule has a stable error code and names the
//! field it is about; values are checked as sent (no silent rewriting), after trimming
//! surrounding whitespace of free-text fields.

use crate::error::DomainError;
use crate::storage::profiles::EditableFields;
use dashboard_api::{DashboardSettings, ProfileUpdate, ShippingAddress};
use sha3::{Digest, Keccak256};

type Result<T> = std::result::Result<T, DomainError>;

fn invalid(code: &'static str, field: &str, message: impl Into<String>) -> DomainError {
    DomainError::Invalid { code, field: field.to_string(), message: message.into() }
}

/// Checks a profile update and returns the fields to store.
pub fn profile_update(update: ProfileUpdate) -> Result<EditableFields> {
    Ok(EditableFields {
        email: update.email.map(|e| email(&e)).transpose()?,
        display_name: update.display_name.map(|n| display_name(&n)).transpose()?,
        shipping_address: update.shipping_address.map(shipping_address).transpose()?,
        preferred_wallet: update.preferred_wallet.map(|w| wallet(&w)).transpose()?,
        avatar_url: update.avatar_url.map(|u| avatar_url(&u)).transpose()?,
        dashboard_settings: settings(update.dashboard_settings.unwrap_or_default())?,
    })
}

pub fn email(value: &str) -> Result<String> {
    let value = value.trim();
    if value.len() > 254 || !email_address::EmailAddress::is_valid(value) {
        return Err(invalid(
            "invalid_email",
            "email",
            "must be an email address (at most 254 characters)",
        ));
    }
    Ok(value.to_string())
}

/// Free text: trimmed, within bounds, no control characters.
fn text(value: &str, field: &str, code: &'static str, min: usize, max: usize) -> Result<String> {
    let value = value.trim();
    let chars = value.chars().count();
    if chars < min || chars > max {
        let what = if min > 0 { format!("{min} to {max}") } else { format!("at most {max}") };
        return Err(invalid(code, field, format!("must be {what} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(code, field, "must not contain control characters"));
    }
    Ok(value.to_string())
}

fn optional_text(
    value: Option<String>,
    field: &str,
    code: &'static str,
    max: usize,
) -> Result<Option<String>> {
    let value = value.map(|v| text(&v, field, code, 0, max)).transpose()?;
    Ok(value.filter(|v| !v.is_empty()))
}

fn display_name(value: &str) -> Result<String> {
    text(value, "displayName", "invalid_display_name", 1, 64)
}

fn shipping_address(address: ShippingAddress) -> Result<ShippingAddress> {
    let postal_code =
        text(&address.postal_code, "shippingAddress.postalCode", "invalid_postal_code", 1, 16)?;
    if !postal_code.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-') {
        return Err(invalid(
            "invalid_postal_code",
            "shippingAddress.postalCode",
            "may hold only letters, digits, spaces and dashes",
        ));
    }
    let country = address.country;
    let is_code = country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase());
    if !is_code || isocountry::CountryCode::for_alpha2(&country).is_err() {
        return Err(invalid(
            "invalid_country",
            "shippingAddress.country",
            "must be an upper-case ISO 3166-1 alpha-2 country code such as US",
        ));
    }
    Ok(ShippingAddress {
        line1: text(&address.line1, "shippingAddress.line1", "invalid_address_line", 1, 100)?,
        line2: optional_text(address.line2, "shippingAddress.line2", "invalid_address_line", 100)?,
        city: text(&address.city, "shippingAddress.city", "invalid_city", 1, 64)?,
        region: optional_text(address.region, "shippingAddress.region", "invalid_region", 64)?,
        postal_code,
        country,
    })
}

/// An EVM address; mixed case must match its EIP-55 checksum.
fn wallet(value: &str) -> Result<String> {
    const FIELD: &str = "preferredWallet";
    let hex = value.strip_prefix("0x").unwrap_or("");
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(
            "invalid_wallet_address",
            FIELD,
            "must be 0x followed by 40 hex digits",
        ));
    }
    let all_lower = !hex.bytes().any(|b| b.is_ascii_uppercase());
    let all_upper = !hex.bytes().any(|b| b.is_ascii_lowercase());
    if !(all_lower || all_upper) && eip55(hex) != hex {
        return Err(invalid(
            "wallet_checksum_mismatch",
            FIELD,
            "mixed-case address fails its EIP-55 checksum",
        ));
    }
    Ok(value.to_string())
}

/// The EIP-55 spelling of a 40-digit hex address (without `0x`).
fn eip55(hex: &str) -> String {
    let lower = hex.to_ascii_lowercase();
    let hash = Keccak256::digest(lower.as_bytes());
    lower
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
            if c.is_ascii_alphabetic() && nibble >= 8 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

fn avatar_url(value: &str) -> Result<String> {
    const FIELD: &str = "avatarUrl";
    if value.len() > 2048 {
        return Err(invalid("invalid_avatar_url", FIELD, "must be at most 2048 characters"));
    }
    let url = url::Url::parse(value)
        .map_err(|e| invalid("invalid_avatar_url", FIELD, format!("is not a URL: {e}")))?;
    if url.scheme() != "https" {
        return Err(invalid("invalid_avatar_url", FIELD, "must use https"));
    }
    if url.host_str().is_none_or(str::is_empty)
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(invalid(
            "invalid_avatar_url",
            FIELD,
            "must name a host and carry no credentials",
        ));
    }
    Ok(value.to_string())
}

/// A member id as tokens carry it in `sub`: 1 to 128 visible characters.
pub fn user_id(field: &str, value: &str) -> Result<()> {
    let ok = (1..=128).contains(&value.len()) && !value.chars().any(|c| c.is_control());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "invalid_user_id",
            field,
            "must be 1 to 128 characters, none of them control characters",
        ))
    }
}

/// A Stripe customer id: `cus_` and letters or digits.
pub fn stripe_customer_id(value: &str) -> Result<()> {
    let rest = value.strip_prefix("cus_").unwrap_or("");
    if (1..=64).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(invalid(
            "invalid_stripe_customer_id",
            "stripeCustomerId",
            "must be cus_ followed by letters or digits",
        ))
    }
}

fn settings(settings: DashboardSettings) -> Result<DashboardSettings> {
    if !(1..=100).contains(&settings.orders_page_size) {
        return Err(invalid(
            "invalid_page_size",
            "dashboardSettings.ordersPageSize",
            "must be from 1 to 100",
        ));
    }
    let locale = &settings.locale;
    let well_formed = !locale.is_empty()
        && locale.len() <= 35
        && locale.split('-').all(|part| {
            (1..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric())
        })
        && locale.split('-').next().is_some_and(|lang| {
            (2..=3).contains(&lang.len()) && lang.bytes().all(|b| b.is_ascii_alphabetic())
        });
    if !well_formed {
        return Err(invalid(
            "invalid_locale",
            "dashboardSettings.locale",
            "must be a BCP 47 language tag such as en-US",
        ));
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eip55_matches_the_reference_vectors() {
        // From the EIP-55 specification.
        for address in [
            "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "fB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "dbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "D1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            assert_eq!(eip55(address), address);
            assert!(wallet(&format!("0x{address}")).is_ok());
        }
    }

    #[test]
    fn single_case_addresses_need_no_checksum() {
        assert!(wallet("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed").is_ok());
        assert!(wallet("0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED").is_ok());
    }

    #[test]
    fn locales() {
        for ok in ["en", "en-US", "zh-Hant-TW", "es-419"] {
            let s = DashboardSettings { locale: ok.into(), ..Default::default() };
            assert!(settings(s).is_ok(), "{ok}");
        }
        for bad in ["", "e", "en_US", "english-language-tag-that-is-long", "1en"] {
            let s = DashboardSettings { locale: bad.into(), ..Default::default() };
            assert!(settings(s).is_err(), "{bad}");
        }
    }
}
