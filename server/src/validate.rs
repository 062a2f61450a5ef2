//! Validation of the editable profile fields. Each rule has a stable error code and names the
//! field it is about. Values are checked as sent, exactly as the schema states the rule (the
//! contract run sends values on both sides of every documented bound); free-text fields are then
//! stored without their surrounding white space.

use crate::error::DomainError;
use crate::storage::profiles::EditableFields;
use dashboard_api::{DashboardSettings, ErrorCode, ProfileUpdate, ShippingAddress};
use sha3::{Digest, Keccak256};
use std::sync::LazyLock;

type Result<T> = std::result::Result<T, DomainError>;

fn invalid(code: ErrorCode, field: &str, message: impl Into<String>) -> DomainError {
    DomainError::Invalid { code, field: field.to_string(), message: message.into() }
}

/// Checks a profile update and returns the fields to store.
pub fn profile_update(update: ProfileUpdate) -> Result<EditableFields> {
    Ok(EditableFields {
        email: update.email.map(|e| email(&e)).transpose()?,
        display_name: update.display_name.map(|n| display_name(&n)).transpose()?,
        shipping_address: update
            .shipping_address
            .map(shipping_address)
            .transpose()?
            .map(Into::into),
        preferred_wallet: update.preferred_wallet.map(|w| wallet(&w)).transpose()?,
        avatar_url: update.avatar_url.map(|u| avatar_url(&u)).transpose()?,
        dashboard_settings: settings(update.dashboard_settings.unwrap_or_default())?.into(),
    })
}

pub fn email(value: &str) -> Result<String> {
    let too_long = value.chars().count() > 254;
    let value = value.trim();
    if too_long || !email_address::EmailAddress::is_valid(value) {
        return Err(invalid(
            ErrorCode::InvalidEmail,
            "email",
            "must be an email address (at most 254 characters)",
        ));
    }
    Ok(value.to_string())
}

/// Free text: at most `max` characters as sent, no control characters, and with `min` = 1 not
/// all white space (the schema's `maxLength` and `VISIBLE_TEXT_PATTERN` or
/// `NO_CONTROL_PATTERN`). Stored without surrounding white space.
fn text(value: &str, field: &str, code: ErrorCode, min: usize, max: usize) -> Result<String> {
    let trimmed = value.trim();
    if value.chars().count() > max || trimmed.chars().count() < min {
        let what = if min > 0 { format!("{min} to {max}") } else { format!("at most {max}") };
        let blank = if min > 0 { ", not all white space" } else { "" };
        return Err(invalid(code, field, format!("must be {what} characters{blank}")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(code, field, "must not contain control characters"));
    }
    Ok(trimmed.to_string())
}

fn optional_text(
    value: Option<String>,
    field: &str,
    code: ErrorCode,
    max: usize,
) -> Result<Option<String>> {
    let value = value.map(|v| text(&v, field, code, 0, max)).transpose()?;
    Ok(value.filter(|v| !v.is_empty()))
}

fn display_name(value: &str) -> Result<String> {
    text(value, "displayName", ErrorCode::InvalidDisplayName, 1, 64)
}

fn shipping_address(address: ShippingAddress) -> Result<ShippingAddress> {
    const POSTAL_CODE: &str = "shippingAddress.postalCode";
    let postal_code = &address.postal_code;
    if !(1..=16).contains(&postal_code.chars().count()) {
        return Err(invalid(
            ErrorCode::InvalidPostalCode,
            POSTAL_CODE,
            "must be 1 to 16 characters",
        ));
    }
    if !postal_code.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
        || !postal_code.chars().any(|c| c.is_ascii_alphanumeric())
    {
        return Err(invalid(
            ErrorCode::InvalidPostalCode,
            POSTAL_CODE,
            "may hold only letters, digits, spaces and dashes, and at least one letter or digit",
        ));
    }
    let postal_code = postal_code.trim().to_string();
    let country = address.country;
    let is_code = country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase());
    if !is_code || isocountry::CountryCode::for_alpha2(&country).is_err() {
        return Err(invalid(
            ErrorCode::InvalidCountry,
            "shippingAddress.country",
            "must be an upper-case ISO 3166-1 alpha-2 country code such as US",
        ));
    }
    Ok(ShippingAddress {
        line1: text(
            &address.line1,
            "shippingAddress.line1",
            ErrorCode::InvalidAddressLine,
            1,
            100,
        )?,
        line2: optional_text(
            address.line2,
            "shippingAddress.line2",
            ErrorCode::InvalidAddressLine,
            100,
        )?,
        city: text(&address.city, "shippingAddress.city", ErrorCode::InvalidCity, 1, 64)?,
        region: optional_text(
            address.region,
            "shippingAddress.region",
            ErrorCode::InvalidRegion,
            64,
        )?,
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
            ErrorCode::InvalidWalletAddress,
            FIELD,
            "must be 0x followed by 40 hex digits",
        ));
    }
    let all_lower = !hex.bytes().any(|b| b.is_ascii_uppercase());
    let all_upper = !hex.bytes().any(|b| b.is_ascii_lowercase());
    if !(all_lower || all_upper) && eip55(hex) != hex {
        return Err(invalid(
            ErrorCode::WalletChecksumMismatch,
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

/// The schema's `AVATAR_URL_PATTERN`: a stricter grammar than URL parsing, so that every value
/// it admits is a URL this rule accepts (checked below all the same).
static AVATAR_URL: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(dashboard_api::AVATAR_URL_PATTERN).expect("the pattern compiles")
});

fn avatar_url(value: &str) -> Result<String> {
    const FIELD: &str = "avatarUrl";
    if value.chars().count() > 2048 {
        return Err(invalid(ErrorCode::InvalidAvatarUrl, FIELD, "must be at most 2048 characters"));
    }
    if !AVATAR_URL.is_match(value) {
        return Err(invalid(
            ErrorCode::InvalidAvatarUrl,
            FIELD,
            "must be an https URL with a host name and no credentials",
        ));
    }
    let url = url::Url::parse(value)
        .map_err(|e| invalid(ErrorCode::InvalidAvatarUrl, FIELD, format!("is not a URL: {e}")))?;
    if url.scheme() != "https" {
        return Err(invalid(ErrorCode::InvalidAvatarUrl, FIELD, "must use https"));
    }
    if url.host_str().is_none_or(str::is_empty)
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(invalid(
            ErrorCode::InvalidAvatarUrl,
            FIELD,
            "must name a host and carry no credentials",
        ));
    }
    Ok(value.to_string())
}

/// A member id as tokens carry it in `sub`: 1 to 128 characters, none of them control
/// characters (the schema's `USER_ID_PATTERN` and length bounds).
pub fn user_id(field: &str, value: &str) -> Result<()> {
    let ok = (1..=128).contains(&value.chars().count()) && !value.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(invalid(
            ErrorCode::InvalidUserId,
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
            ErrorCode::InvalidStripeCustomerId,
            "stripeCustomerId",
            "must be cus_ followed by letters or digits",
        ))
    }
}

fn settings(settings: DashboardSettings) -> Result<DashboardSettings> {
    if !(1..=100).contains(&settings.orders_page_size) {
        return Err(invalid(
            ErrorCode::InvalidPageSize,
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
            ErrorCode::InvalidLocale,
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

    fn matches(pattern: &str, value: &str) -> bool {
        regex::Regex::new(pattern).unwrap().is_match(value)
    }

    #[test]
    fn country_pattern_is_the_assigned_codes() {
        for a in 'A'..='Z' {
            for b in 'A'..='Z' {
                let code = format!("{a}{b}");
                let assigned = isocountry::CountryCode::for_alpha2(&code).is_ok();
                assert_eq!(matches(dashboard_api::COUNTRY_PATTERN, &code), assigned, "{code}");
            }
        }
        assert!(!matches(dashboard_api::COUNTRY_PATTERN, "GBR"));
        assert!(!matches(dashboard_api::COUNTRY_PATTERN, "gb"));
    }

    /// Each free-text rule accepts exactly what its schema (pattern and length) accepts.
    #[test]
    fn text_rules_match_their_schema() {
        let samples = [
            "",
            " ",
            "a",
            " a ",
            "\u{a0}",
            "a\u{7}b",
            "\u{85}",
            "\u{9f}x",
            "x\u{1f}",
            "\u{feff}",
            "\u{2028}",
            "\t",
            "ab\n",
            "Ada Lovelace",
            "ü",
            "\u{1F600}",
        ];
        let long = |n: usize, c: char| std::iter::repeat_n(c, n).collect::<String>();
        let mut values: Vec<String> = samples.iter().map(|s| s.to_string()).collect();
        for n in [63, 64, 65, 99, 100, 101] {
            values.push(long(n, 'x'));
            values.push(format!(" {}", long(n - 1, 'é')));
            values.push(format!("{} ", long(n, 'x')));
        }
        let visible = dashboard_api::VISIBLE_TEXT_PATTERN;
        let plain = dashboard_api::NO_CONTROL_PATTERN;
        for value in &values {
            let chars = value.chars().count();
            let schema = |pattern: &str, min: usize, max: usize| {
                (min..=max).contains(&chars) && matches(pattern, value)
            };
            let rule = |min, max| text(value, "f", ErrorCode::InvalidDisplayName, min, max).is_ok();
            assert_eq!(rule(1, 64), schema(visible, 1, 64), "{value:?}");
            assert_eq!(rule(1, 100), schema(visible, 1, 100), "{value:?}");
            assert_eq!(rule(0, 64), schema(plain, 0, 64), "{value:?}");
            let user = user_id("userId", value).is_ok();
            let user_schema = schema(dashboard_api::USER_ID_PATTERN, 1, 128);
            assert_eq!(user, user_schema, "{value:?}");
        }
    }

    #[test]
    fn postal_code_rule_matches_its_schema() {
        let pattern = dashboard_api::POSTAL_CODE_PATTERN;
        for value in ["", " ", "-", "1", " 1", "SW1A 1AA", "12#45", "\t1", "1\n", "é1"]
            .into_iter()
            .map(String::from)
            .chain([16, 17].map(|n| "1".repeat(n)))
            .chain([" 123456789012345".to_string(), " 1234567890123456".to_string()])
        {
            let address = ShippingAddress {
                line1: "a".into(),
                line2: None,
                city: "b".into(),
                region: None,
                postal_code: value.clone(),
                country: "GB".into(),
            };
            let chars = value.chars().count();
            let schema = (1..=16).contains(&chars) && matches(pattern, &value);
            assert_eq!(shipping_address(address).is_ok(), schema, "{value:?}");
        }
    }

    #[test]
    fn avatar_urls() {
        for ok in [
            "https://cdn.example.com/ada.png",
            "https://a",
            "https://x-1.b2.Example:443/p/a%2Fth;v=1?q=1&r=/?#frag/?",
            "https://0.example.com:65535",
            "https://a.b#",
        ] {
            assert!(avatar_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://cdn.example.com/a.png",
            "https://",
            "https://u:p@cdn.example.com/a.png",
            "https://1.2.3.4/a.png",
            "https://a.0x1",
            "https://xn--a.com",
            "https://a-.com",
            "https://a:65536",
            "https://a/%zz",
            "https://a/b c",
            "https://ünï.example",
            "not a url",
        ] {
            assert!(avatar_url(bad).is_err(), "{bad}");
        }
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
