//! [`JsonBody`]: Dropshot's `TypedBody`, except that every JSON object of the schema must be sent
//! as a JSON object.
//!
//! serde's derived `Deserialize` for a struct also accepts a JSON array (the fields in order), so
//! with `TypedBody` a body of `[]` becomes a struct whose fields all take their defaults, and
//! `"shippingAddress": ["a", "b", "c", "d"]` an address. The schema says `type: object` for all
//! of these; this extractor refuses anything else with the same 400 a value of the wrong type
//! gets (`invalid_body`).

use dropshot::{
    ApiEndpointBodyContentType, ExclusiveExtractor, ExtractorMetadata, HttpError, RequestContext,
    ServerContext, TypedBody,
};
use schemars::JsonSchema;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};

/// A JSON request body of type `T` (documented exactly as `TypedBody<T>`), whose objects must
/// be JSON objects.
#[derive(Debug)]
pub struct JsonBody<T> {
    inner: T,
}

impl<T> JsonBody<T> {
    pub fn into_inner(self) -> T {
        self.inner
    }
}

#[async_trait::async_trait]
impl<T> ExclusiveExtractor for JsonBody<T>
where
    T: JsonSchema + DeserializeOwned + Send + Sync + 'static,
{
    async fn from_request<Context: ServerContext>(
        rqctx: &RequestContext<Context>,
        request: hyper::Request<dropshot::Body>,
    ) -> Result<Self, HttpError> {
        // Dropshot's own reading: size limit, content type, JSON syntax, with its messages.
        let value = TypedBody::<Value>::from_request(rqctx, request).await?.into_inner();
        let inner = from_value(value).map_err(|message| {
            // Dropshot logs this message with the request: no value sent may be in it.
            let message = without_strings(&message);
            HttpError::for_bad_request(None, format!("unable to parse JSON body: {message}"))
        })?;
        Ok(JsonBody { inner })
    }

    fn metadata(content_type: ApiEndpointBodyContentType) -> ExtractorMetadata {
        <TypedBody<T> as ExclusiveExtractor>::metadata(content_type)
    }
}

/// serde's message without the strings it quotes from the input (`invalid type: string
/// "12 Analytical Row", expected struct ShippingAddress`): a value of the wrong type can be
/// personal data (an address sent as a string), and the message is logged.
fn without_strings(message: &str) -> String {
    const QUOTED: &str = "string \"";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(QUOTED) {
        out.push_str(&rest[..start]);
        out.push_str("a string");
        // serde quotes with `{:?}`: the string ends at the first quote not escaped.
        let mut chars = rest[start + QUOTED.len()..].char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    end = Some(start + QUOTED.len() + i + 1);
                    break;
                }
                _ => {}
            }
        }
        match end {
            Some(end) => rest = &rest[end..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// Deserializes `T` from `value`, refusing anything but an object where `T` has a struct, and
/// naming the path of the value at fault (`shippingAddress.country: invalid type: …`).
fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    from_json_value(value).map_err(|e| e.to_string())
}

/// What [`JsonBody`] does to a body, for a value the server puts together itself (a merge patch
/// applied to the stored profile): `T` from `value`, objects only; the error has the path of the
/// object at fault (`path()`) and serde's message (`inner()`).
pub fn from_json_value<T: DeserializeOwned>(
    value: Value,
) -> Result<T, serde_path_to_error::Error<serde_json::Error>> {
    serde_path_to_error::deserialize(Strict(value))
}

/// A `serde_json::Value` as a deserializer whose structs are objects only.
struct Strict(Value);

type Error = serde_json::Error;

fn unexpected(value: &Value) -> de::Unexpected<'_> {
    match value {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => de::Unexpected::Unsigned(u),
            (_, Some(i), _) => de::Unexpected::Signed(i),
            (_, _, Some(f)) => de::Unexpected::Float(f),
            _ => de::Unexpected::Other("number"),
        },
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

impl<'de> de::Deserializer<'de> for Strict {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Array(items) => {
                let len = items.len();
                let mut seq = Seq(items.into_iter());
                let value = visitor.visit_seq(&mut seq)?;
                if seq.0.next().is_some() {
                    return Err(de::Error::invalid_length(len, &"fewer elements in array"));
                }
                Ok(value)
            }
            Value::Object(map) => visitor.visit_map(Object::new(map)),
            scalar => de::Deserializer::deserialize_any(scalar, visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(Object::new(map)),
            other => Err(de::Error::invalid_type(unexpected(&other), &visitor)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        // The API's enums are strings; serde_json's own rules apply.
        de::Deserializer::deserialize_enum(self.0, name, variants, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

struct Seq(std::vec::IntoIter<Value>);

impl<'de> de::SeqAccess<'de> for Seq {
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        self.0.next().map(|item| seed.deserialize(Strict(item))).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Object {
    entries: serde_json::map::IntoIter,
    value: Option<Value>,
}

impl Object {
    fn new(map: Map<String, Value>) -> Self {
        Object { entries: map.into_iter(), value: None }
    }
}

impl<'de> de::MapAccess<'de> for Object {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                let key: de::value::StringDeserializer<Error> = key.into_deserializer();
                seed.deserialize(key).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let value = self.value.take().ok_or_else(|| de::Error::custom("value without a key"))?;
        seed.deserialize(Strict(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LinkStripeCustomer, ProfileUpdate, SyncRequest};
    use serde_json::json;

    #[test]
    fn objects_must_be_objects() {
        for body in [json!([]), json!(["a@b.co"]), json!("x"), json!(1), json!(null)] {
            assert!(from_value::<ProfileUpdate>(body.clone()).is_err(), "{body}");
            assert!(from_value::<SyncRequest>(body.clone()).is_err(), "{body}");
            assert!(from_value::<LinkStripeCustomer>(body.clone()).is_err(), "{body}");
        }
        let nested = json!({"shippingAddress": ["a", null, "b", null, "1", "US"]});
        let error = from_value::<ProfileUpdate>(nested).unwrap_err();
        assert_eq!(
            error,
            "shippingAddress: invalid type: sequence, expected struct ShippingAddress"
        );
        let error = from_value::<ProfileUpdate>(json!({"dashboardSettings": []})).unwrap_err();
        assert!(error.starts_with("dashboardSettings: invalid type: sequence"), "{error}");
    }

    #[test]
    fn what_serde_json_accepts_is_accepted_alike() {
        let body = json!({
            "email": "ada@example.com",
            "displayName": null,
            "shippingAddress": {"line1": "1 Row", "city": "London", "postalCode": "N1",
                "country": "GB", "line2": null, "region": "  "},
            "preferredWallet": null,
            "avatarUrl": null,
            "dashboardSettings": {"theme": "dark", "ordersPageSize": 50,
                "emailNotifications": true, "locale": "en-GB"},
        });
        let strict: ProfileUpdate = from_value(body.clone()).unwrap();
        let plain: ProfileUpdate = serde_json::from_value(body).unwrap();
        assert_eq!(strict, plain);
        let nulls = json!({"email": null, "displayName": null, "shippingAddress": null,
            "preferredWallet": null, "avatarUrl": null, "dashboardSettings": null});
        assert_eq!(from_value::<ProfileUpdate>(nulls).unwrap(), ProfileUpdate::default());
    }

    /// Every editable field must be sent: only `null` clears one.
    #[test]
    fn an_update_names_every_field() {
        assert_eq!(from_value::<ProfileUpdate>(json!({})).unwrap_err(), "missing field `email`");
        let address = json!({"shippingAddress": {"line1": "1 Row", "city": "London",
            "postalCode": "N1", "country": "GB", "line2": null}});
        let error = from_value::<ProfileUpdate>(address).unwrap_err();
        assert_eq!(error, "shippingAddress: missing field `region`");
    }

    /// A patch tells a member left out (`None`) from one sent as `null` (`Some(None)`), and
    /// serialises back to the same document.
    #[test]
    fn a_patch_tells_null_from_absent() {
        use crate::ProfilePatch;
        let body = json!({"email": null, "displayName": "Ada",
            "shippingAddress": {"region": null, "city": "Paris"}});
        let patch: ProfilePatch = from_value(body.clone()).unwrap();
        assert_eq!(patch.email, Some(None));
        assert_eq!(patch.avatar_url, None);
        assert_eq!(serde_json::to_value(&patch).unwrap(), body);
        let error = from_value::<ProfilePatch>(json!({"shippingAddress": {"city": null}}));
        assert!(error.unwrap_err().starts_with("shippingAddress.city: invalid type: null"));
        let error = from_value::<ProfilePatch>(json!({"dashboardSettings": {"theme": null}}));
        assert!(error.unwrap_err().starts_with("dashboardSettings.theme: invalid type: null"));
        for body in [json!([]), json!(null), json!("x")] {
            assert!(from_value::<ProfilePatch>(body).is_err());
        }
    }

    #[test]
    fn messages_quote_no_string_sent() {
        let body = json!({"shippingAddress": "7 Secret \\\"Lane\\\", Leeds"});
        let message = from_value::<ProfileUpdate>(body).unwrap_err();
        assert!(message.contains("Secret"), "serde quotes it: {message}");
        let message = without_strings(&message);
        assert_eq!(
            message,
            "shippingAddress: invalid type: a string, expected struct ShippingAddress"
        );
        assert_eq!(
            without_strings("a string \"x\" and string \"y\\\"z\" end"),
            "a a string and a string end"
        );
        assert_eq!(without_strings("cut string \"abc"), "cut a string");
    }

    #[test]
    fn errors_keep_serde_messages() {
        let error = from_value::<ProfileUpdate>(json!({"nickname": "x"})).unwrap_err();
        // Dropshot's TypedBody says the same (it uses serde_path_to_error too).
        assert!(error.starts_with("nickname: unknown field `nickname`"), "{error}");
        let error = from_value::<SyncRequest>(json!({})).unwrap_err();
        assert_eq!(error, "missing field `userId`");
        let error = from_value::<ProfileUpdate>(json!({"displayName": 42})).unwrap_err();
        assert_eq!(error, "displayName: invalid type: integer `42`, expected a string");
        let error = from_value::<ProfileUpdate>(json!({"dashboardSettings": {"theme": "neon"}}))
            .unwrap_err();
        assert!(error.starts_with("dashboardSettings.theme: unknown variant `neon`"), "{error}");
    }
}
