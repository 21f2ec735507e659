//! One MaxMind DB record as Signpost reads it: the few fields that place a client (continent,
//! country, first subdivision, coordinates, registered country, ASN), decoded straight from
//! the record's map with every other field skipped, and the classification rule that turns
//! them into a location key.
//!
//! The decoding is written by hand over serde's visitor interface (the `maxminddb` crate
//! parses the format) because it runs once per distinct record of a database, half a million
//! times for a City database: derived code that buffers an untagged value or collects the
//! subdivisions list cost several times more.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The fields of a record that place a client, borrowed from the database.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Record<'a> {
    /// `continent.code` (GeoIP2), or `continent` / `continent_code` as text (flat layouts).
    pub continent: Option<&'a str>,
    /// `country.iso_code`, else `country_code` (flat layouts).
    pub country: Option<&'a str>,
    /// `registered_country.iso_code`.
    pub registered_country: Option<&'a str>,
    /// `subdivisions[0].iso_code`.
    pub subdivision: Option<&'a str>,
    /// `location.latitude/longitude`, else top-level `latitude/longitude`.
    pub location: Option<(f64, f64)>,
    /// `autonomous_system_number`.
    pub asn: Option<u32>,
}

/// What a record says, as the compiler uses it: the location key (continent, country,
/// subdivision), upper case, and the coordinates.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Placed {
    /// Two-letter continent code.
    pub continent: Option<[u8; 2]>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<[u8; 2]>,
    /// The subdivision's own code (`CA` of `US-CA`), upper case.
    pub subdivision: Option<String>,
    /// Latitude and longitude.
    pub location: Option<(f64, f64)>,
}

fn two(code: Option<&str>) -> Option<[u8; 2]> {
    match code?.as_bytes() {
        &[a, b] => Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()]),
        _ => None,
    }
}

impl Record<'_> {
    /// The record's own location fields decide: its country (where the user is believed to
    /// be), else its continent. The registered country (where the network is registered) is
    /// used only when the record has no location at all (no country, no continent, no
    /// coordinates): a network located in Europe but registered to a US company stays in
    /// Europe. The continent is derived from the country when the record has none; a
    /// subdivision belongs to the record's own country only.
    pub fn placed(&self) -> Placed {
        let own_country = two(self.country);
        let own_continent = two(self.continent);
        let located = own_country.is_some() || own_continent.is_some() || self.location.is_some();
        let country = if located {
            own_country
        } else {
            two(self.registered_country)
        };
        let continent = own_continent.or_else(|| {
            let c = country?;
            let code = super::continent_of(std::str::from_utf8(&c).ok()?)?;
            two(Some(code))
        });
        let subdivision = match (own_country, self.subdivision) {
            (Some(_), Some(s)) if !s.is_empty() => Some(s.to_ascii_uppercase()),
            _ => None,
        };
        Placed {
            continent,
            country,
            subdivision,
            location: self.location,
        }
    }
}

/// A map key, as the bytes the database holds (read without a UTF-8 check).
struct Key<'de>(&'de [u8]);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map key")
            }

            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Key<'de>, E> {
                Ok(Key(v))
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(v.as_bytes()))
            }

            fn visit_str<E: de::Error>(self, _: &str) -> Result<Key<'de>, E> {
                Ok(Key(b""))
            }

            fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Key<'de>, E> {
                Ok(Key(b""))
            }
        }
        d.deserialize_identifier(V)
    }
}

/// `{ "code": ... }` or `{ "iso_code": ... }`: the one text field `.0` of a map, or the value
/// itself when it is text; nothing for a value of another type.
struct CodeOf(&'static str);

impl<'de> de::DeserializeSeed<'de> for CodeOf {
    type Value = Option<&'de str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CodeOf {
    type Value = Option<&'de str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "text or a map with {:?}", self.0)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(v))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        // Only text that lives in the database can be kept.
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = None;
        while let Some(Key(key)) = map.next_key()? {
            if key == self.0.as_bytes() {
                out = map.next_value_seed(Text)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A text value, or nothing for a value of another type.
struct Text;

impl<'de> de::DeserializeSeed<'de> for Text {
    type Value = Option<&'de str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        // A map or list in place of text holds no code: skipped, not an error.
        d.deserialize_any(CodeOf(""))
    }
}

/// `subdivisions`: the first element's `iso_code`, the others skipped.
struct FirstIso;

impl<'de> de::DeserializeSeed<'de> for FirstIso {
    type Value = Option<&'de str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FirstIso {
    type Value = Option<&'de str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of subdivisions")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let first = seq.next_element_seed(CodeOf("iso_code"))?.flatten();
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(first)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A number as `f64`, or nothing for a value of another type.
struct Number;

impl<'de> de::DeserializeSeed<'de> for Number {
    type Value = Option<f64>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Number {
    type Value = Option<f64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(v.is_finite().then_some(v))
    }

    fn visit_f32<E: de::Error>(self, v: f32) -> Result<Self::Value, E> {
        self.visit_f64(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }

    fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// `location`: its latitude and longitude, both or neither.
pub(super) struct Coordinates;

impl<'de> de::DeserializeSeed<'de> for Coordinates {
    type Value = Option<(f64, f64)>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// [`Coordinates`] as a type, for reading a record's `location` by path.
pub(super) struct Location(pub Option<(f64, f64)>);

impl<'de> Deserialize<'de> for Location {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de::DeserializeSeed::deserialize(Coordinates, d).map(Location)
    }
}

impl<'de> Visitor<'de> for Coordinates {
    type Value = Option<(f64, f64)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map with latitude and longitude")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut lat, mut lon) = (None, None);
        while let Some(Key(key)) = map.next_key()? {
            match key {
                b"latitude" => lat = map.next_value_seed(Number)?,
                b"longitude" => lon = map.next_value_seed(Number)?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(lat.zip(lon))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A whole number that fits `u32`, or nothing.
struct Asn;

impl<'de> de::DeserializeSeed<'de> for Asn {
    type Value = Option<u32>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Asn {
    type Value = Option<u32>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AS number")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(u32::try_from(v).ok())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(u32::try_from(v).ok())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// A whole record read through serde, every field accepted in any type (unusable values are
/// ignored) and in either layout (a GeoIP2 map wins over the flat field): for the flat and
/// ASN layouts, and for the GeoIP2 records that reading by path does not place
/// ([`Record::of_geoip2`]).
pub(super) struct Lenient<'a>(pub Record<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for Lenient<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = Record<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a GeoIP record (a map)")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record<'de>, A::Error> {
                let mut r = Record::default();
                let (mut flat_country, mut flat_continent) = (None, None);
                let (mut lat, mut lon) = (None, None);
                while let Some(Key(key)) = map.next_key()? {
                    match key {
                        b"continent" => r.continent = map.next_value_seed(CodeOf("code"))?,
                        b"country" => r.country = map.next_value_seed(CodeOf("iso_code"))?,
                        b"registered_country" => {
                            r.registered_country = map.next_value_seed(CodeOf("iso_code"))?
                        }
                        b"subdivisions" => r.subdivision = map.next_value_seed(FirstIso)?,
                        b"location" => r.location = map.next_value_seed(Coordinates)?,
                        b"country_code" => flat_country = map.next_value_seed(Text)?,
                        b"continent_code" => flat_continent = map.next_value_seed(Text)?,
                        b"latitude" => lat = map.next_value_seed(Number)?,
                        b"longitude" => lon = map.next_value_seed(Number)?,
                        b"autonomous_system_number" => r.asn = map.next_value_seed(Asn)?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                r.country = r.country.or(flat_country);
                r.continent = r.continent.or(flat_continent);
                r.location = r.location.or(lat.zip(lon));
                Ok(r)
            }
        }
        d.deserialize_map(Fields).map(Lenient)
    }
}

impl<'a> Record<'a> {
    /// Reads a record of a GeoIP2-typed database. The GeoIP2 fields are read by path first:
    /// only the fields needed, each found by skipping past the others (a skipped field costs a
    /// pointer or a header, where decoding the whole record would walk every name in every
    /// language). A record that this does not place whole (no `country.iso_code` or
    /// `continent.code` map, no `location` map when `coordinates` is set, or a field of
    /// another type, such as `continent` as text) is read again as a whole by [`Lenient`],
    /// each field in whichever layout it is present (GeoIP2 maps, text, or the flat
    /// `country_code`, `continent_code`, `latitude`, `longitude`), and that reading decides:
    /// a record it cannot read is refused with its error. `Ok(None)`: the address has no
    /// record.
    pub fn of_geoip2<S: AsRef<[u8]>>(
        item: &maxminddb::LookupResult<'a, S>,
        coordinates: bool,
    ) -> Result<Option<Record<'a>>, maxminddb::MaxMindDbError> {
        if !item.has_data() {
            return Ok(None);
        }
        match Record::by_path(item, coordinates) {
            Ok(Some(r)) => Ok(Some(r)),
            Ok(None) | Err(_) => item.decode::<Lenient>().map(|r| r.map(|r| r.0)),
        }
    }

    /// The GeoIP2 fields of a record read by path; `None` when a field that places the client
    /// is not there as a GeoIP2 map (the record may hold it in another layout), an error when a
    /// field on the path has another type (or the record cannot be decoded). The subdivision
    /// is read once the country is known, the coordinates only when `coordinates` is set.
    fn by_path<S: AsRef<[u8]>>(
        item: &maxminddb::LookupResult<'a, S>,
        coordinates: bool,
    ) -> Result<Option<Record<'a>>, maxminddb::MaxMindDbError> {
        use maxminddb::path;
        let Some(country) = item.decode_path(&path!["country", "iso_code"])? else {
            return Ok(None);
        };
        let Some(continent) = item.decode_path(&path!["continent", "code"])? else {
            return Ok(None);
        };
        let location = if coordinates {
            match item
                .decode_path::<Location>(&path!["location"])?
                .and_then(|l| l.0)
            {
                Some(at) => Some(at),
                None => return Ok(None),
            }
        } else {
            None
        };
        Ok(Some(Record {
            country: Some(country),
            continent: Some(continent),
            subdivision: item.decode_path(&path!["subdivisions", 0, "iso_code"])?,
            location,
            ..Record::default()
        }))
    }
}
