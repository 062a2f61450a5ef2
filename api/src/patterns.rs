//! The schema's text patterns (`pattern` in the spec). The server's validation checks the same
//! rules and its tests hold both to them, so they are public.
//!
//! Control characters are Unicode category Cc: U+0000 to U+001F and U+007F to U+009F.

/// Text without control characters.
pub const NO_CONTROL_PATTERN: &str = r"^[^\x00-\x1F\x7F-\x9F]*$";
/// Text without control characters and with at least one character that is not white space.
pub const VISIBLE_TEXT_PATTERN: &str =
    r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$";
/// A member id (a token's `sub`): no control characters; 1 to 128 characters.
pub const USER_ID_PATTERN: &str = r"^[^\x00-\x1F\x7F-\x9F]+$";
/// A postal code: letters, digits, spaces and dashes, at least one letter or digit.
pub const POSTAL_CODE_PATTERN: &str = r"^[A-Za-z0-9 -]*[A-Za-z0-9][A-Za-z0-9 -]*$";
/// An avatar URL: `https://`, a host name, an optional port (0 to 65535), an optional path,
/// query and fragment (RFC 3986 characters and `%` escapes). Host labels are ASCII letters,
/// digits and single hyphens (no `xn--` labels), the last starting with a letter (so that it is
/// never read as an IP address). Every such string parses as a URL with that host.
pub const AVATAR_URL_PATTERN: &str = concat!(
    r"^https://(?:[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\.)*[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*",
    r"(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?",
    r"(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*)?",
    r"(?:\?(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?",
    r"(?:#(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$",
);
/// An assigned ISO 3166-1 alpha-2 country code.
pub const COUNTRY_PATTERN: &str = "^(?:A[DEFGILMOQRSTUWXZ]|B[ABDEFGHIJLMNOQRSTVWYZ]|\
    C[ACDFGHIKLMNORUVWXYZ]|D[EJKMOZ]|E[CEGHRST]|F[IJKMOR]|G[ABDEFGHILMNPQRSTUWY]|H[KMNRTU]|\
    I[DELMNOQRST]|J[EMOP]|K[EGHIMNPRWYZ]|L[ABCIKRSTUVY]|M[ACDEFGHKLMNOPQRSTUVWXYZ]|\
    N[ACEFGILOPRUZ]|OM|P[AEFGHKLMNRSTWY]|QA|R[EOSUW]|S[ABCDEGHIJKLMNORSTVXYZ]|\
    T[CDFGHJKLMNORTVWZ]|U[AGMSYZ]|V[ACEGINU]|W[FS]|Y[ET]|Z[AMW])$";
