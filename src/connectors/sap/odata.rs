//! OData's text: `$filter` literals and expressions as v2 and v4 write them, and values
//! between OData's JSON and the catalog's types (v2's `/Date(…)/` instants and 64-bit
//! integers and decimals as strings).

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::Value;

use super::metadata::{Property, Version};
use crate::conditions::{Condition, Operator};

/// A literal of a property's Edm type, as the service's OData writes it in a URL.
pub fn literal(value: &Value, p: &Property, version: Version) -> Result<String, String> {
    let text = match value {
        Value::Null => return Ok("null".into()),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => return Err(format!("`{other}` is not a value for {}", p.name)),
    };
    let v2 = version == Version::V2;
    let number = |suffix: &str| -> Result<String, String> {
        text.parse::<f64>()
            .map_err(|_| format!("`{text}` is not a number, which {} holds", p.name))?;
        Ok(if v2 {
            format!("{text}{suffix}")
        } else {
            text.clone()
        })
    };
    Ok(match p.edm.as_str() {
        "Edm.Boolean" if text == "true" || text == "false" => text,
        "Edm.Boolean" => return Err(format!("`{text}` is not true or false")),
        "Edm.Byte" | "Edm.SByte" | "Edm.Int16" | "Edm.Int32" => {
            text.parse::<i64>()
                .map_err(|_| format!("`{text}` is not a whole number, which {} holds", p.name))?;
            text
        }
        "Edm.Int64" => {
            text.parse::<i64>()
                .map_err(|_| format!("`{text}` is not a whole number, which {} holds", p.name))?;
            if v2 { format!("{text}L") } else { text }
        }
        "Edm.Decimal" => number("M")?,
        "Edm.Double" => number("d")?,
        "Edm.Single" => number("f")?,
        "Edm.DateTime" => format!(
            "datetime'{}'",
            instant(&text)?.format("%Y-%m-%dT%H:%M:%S%.3f")
        ),
        "Edm.DateTimeOffset" => {
            let t = instant(&text)?.to_rfc3339_opts(SecondsFormat::Millis, true);
            if v2 {
                format!("datetimeoffset'{t}'")
            } else {
                t
            }
        }
        "Edm.Date" => {
            NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                .map_err(|_| format!("`{text}` is not a date like 2026-11-30"))?;
            text
        }
        "Edm.Guid" if v2 => format!("guid'{text}'"),
        "Edm.Guid" => text,
        "Edm.Time" if v2 => format!("time'{text}'"),
        _ => format!("'{}'", text.replace('\'', "''")),
    })
}

/// An instant in RFC 3339, or a date taken as its midnight in UTC.
fn instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        })
        .map_err(|_| format!("`{text}` is not a date and time like 2026-11-30T00:00:00Z"))
}

/// An instant as a `$filter` compares the property with it.
pub fn instant_literal(t: DateTime<Utc>, p: &Property, version: Version) -> String {
    let text = Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true));
    literal(&text, p, version).expect("an instant is a literal of an instant property")
}

/// One condition as a `$filter` expression.
pub fn condition(c: &Condition, p: &Property, version: Version) -> Result<String, String> {
    let name = &p.name;
    let one = |v: &Value| literal(v, p, version);
    let list = |v: &Value| -> Result<Vec<String>, String> {
        match v {
            Value::Array(items) => items.iter().map(one).collect(),
            other => Ok(vec![one(other)?]),
        }
    };
    let joined = |op: &str, join: &str| -> Result<String, String> {
        let terms: Vec<String> = list(&c.value)?
            .into_iter()
            .map(|l| format!("{name} {op} {l}"))
            .collect();
        Ok(match terms.len() {
            1 => terms[0].clone(),
            _ => format!("({})", terms.join(join)),
        })
    };
    Ok(match c.operator {
        Operator::EqualTo => joined("eq", " or ")?,
        Operator::NotEqualTo => joined("ne", " and ")?,
        Operator::LessThan => format!("{name} lt {}", one(&c.value)?),
        Operator::GreaterThan => format!("{name} gt {}", one(&c.value)?),
        Operator::LessThanOrEqualTo => format!("{name} le {}", one(&c.value)?),
        Operator::GreaterThanOrEqualTo => format!("{name} ge {}", one(&c.value)?),
        Operator::Contains => {
            let Value::String(s) = &c.value else {
                return Err("`contains` takes a text".into());
            };
            let quoted = format!("'{}'", s.replace('\'', "''"));
            match version {
                Version::V2 => format!("substringof({quoted},{name})"),
                Version::V4 => format!("contains({name},{quoted})"),
            }
        }
        Operator::Between => match &c.value {
            Value::Array(pair) if pair.len() == 2 => format!(
                "({name} ge {} and {name} le {})",
                one(&pair[0])?,
                one(&pair[1])?
            ),
            _ => return Err("`between` takes [low, high]".into()),
        },
    })
}

/// A value as the service's JSON gives it, in the catalog's type: v2's instants
/// (`/Date(1764460800000)/`, `/Date(1764460800000+0060)/`, milliseconds in UTC) as RFC
/// 3339, its 64-bit integers and doubles given as text as numbers. Decimals stay as they
/// come (text or number): they are read exactly.
pub fn read_value(value: Value, p: &Property) -> Value {
    match (p.edm.as_str(), value) {
        ("Edm.DateTime" | "Edm.DateTimeOffset", Value::String(s)) => Value::String(
            v2_instant(&s)
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
                .unwrap_or(s),
        ),
        ("Edm.Int64" | "Edm.Int32" | "Edm.Int16", Value::String(s)) => {
            s.parse::<i64>().map_or(Value::String(s), Value::from)
        }
        ("Edm.Double" | "Edm.Single", Value::String(s)) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::String(s), Value::Number),
        (_, v) => v,
    }
}

/// `/Date(1764460800000)/` or `/Date(1764460800000+0060)/`: milliseconds since 1970 in
/// UTC (the offset only says where it was written).
fn v2_instant(text: &str) -> Option<DateTime<Utc>> {
    let inner = text.strip_prefix("/Date(")?.strip_suffix(")/")?;
    let digits = match inner.get(1..)?.find(['+', '-']) {
        Some(i) => &inner[..i + 1],
        None => inner,
    };
    DateTime::from_timestamp_millis(digits.parse().ok()?)
}

/// The key values an entity id names (`A_Product('P1')`, `Texts(Product='P1',Language='EN')`,
/// `Orders(12L)`, absolute or relative, percent-encoded or not), in order, each with its
/// property's name when the id gives it: literals as text without their quotes, type
/// prefixes and suffixes, for [`read_value`] to type.
pub fn key_of(id: &str, set: &str) -> Vec<(Option<String>, String)> {
    let id = percent_decoded(id);
    let Some(start) = id.rfind(&format!("{set}(")).map(|i| i + set.len() + 1) else {
        return Vec::new();
    };
    let inner = id[start..].strip_suffix(')').unwrap_or(&id[start..]);
    let mut parts = Vec::new();
    let (mut part, mut quoted) = (String::new(), false);
    for c in inner.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                part.push(c);
            }
            ',' if !quoted => parts.push(std::mem::take(&mut part)),
            c => part.push(c),
        }
    }
    parts.push(part);
    parts
        .into_iter()
        .map(|part| {
            let (name, literal) = match part.split_once('=') {
                Some((n, l)) if !n.contains('\'') => (Some(n.trim().to_string()), l.trim()),
                _ => (None, part.trim()),
            };
            let text = match literal.find('\'') {
                // 'text', guid'…', datetime'…': what is between the outer quotes.
                Some(open) if literal.ends_with('\'') && literal.len() > open + 1 => {
                    literal[open + 1..literal.len() - 1].replace("''", "'")
                }
                _ => literal
                    .trim_end_matches(['L', 'M', 'm', 'd', 'f'])
                    .to_string(),
            };
            (name, text)
        })
        .collect()
}

/// `%27` as `'`: ids may come percent-encoded.
fn percent_decoded(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// A value of the catalog's type as the service's JSON takes it in a write.
pub fn write_value(value: Value, p: &Property, version: Version) -> Value {
    let v2 = version == Version::V2;
    match (p.edm.as_str(), value) {
        ("Edm.DateTime" | "Edm.DateTimeOffset", Value::String(s)) if v2 => match instant(&s) {
            Ok(t) if p.edm == "Edm.DateTime" => {
                Value::String(format!("/Date({})/", t.timestamp_millis()))
            }
            Ok(t) => Value::String(format!("/Date({}+0000)/", t.timestamp_millis())),
            Err(_) => Value::String(s),
        },
        // v2's JSON writes 64-bit integers and decimals as text.
        ("Edm.Int64" | "Edm.Decimal", Value::Number(n)) if v2 => Value::String(n.to_string()),
        (_, v) => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn property(name: &str, edm: &str) -> Property {
        Property {
            name: name.into(),
            label: name.into(),
            edm: edm.into(),
            precision: Some(13),
            scale: Some(2),
            filterable: true,
        }
    }

    #[test]
    fn literals_are_written_as_each_version_writes_them() {
        let cases = [
            ("Edm.String", json!("O'Brien"), "'O''Brien'", "'O''Brien'"),
            ("Edm.Int64", json!(42), "42L", "42"),
            ("Edm.Decimal", json!("12.50"), "12.50M", "12.50"),
            ("Edm.Int32", json!(7), "7", "7"),
            ("Edm.Boolean", json!(true), "true", "true"),
            (
                "Edm.DateTime",
                json!("2026-11-30T08:00:00Z"),
                "datetime'2026-11-30T08:00:00.000'",
                "datetime'2026-11-30T08:00:00.000'",
            ),
            (
                "Edm.DateTimeOffset",
                json!("2026-11-30"),
                "datetimeoffset'2026-11-30T00:00:00.000Z'",
                "2026-11-30T00:00:00.000Z",
            ),
            ("Edm.Guid", json!("0050"), "guid'0050'", "0050"),
        ];
        for (edm, value, v2, v4) in cases {
            let p = property("F", edm);
            assert_eq!(literal(&value, &p, Version::V2).unwrap(), v2, "{edm}");
            assert_eq!(literal(&value, &p, Version::V4).unwrap(), v4, "{edm}");
        }
        let amount = property("Price", "Edm.Decimal");
        assert!(
            literal(&json!("lots"), &amount, Version::V2)
                .unwrap_err()
                .contains("not a number")
        );
    }

    #[test]
    fn conditions_become_filter_expressions() {
        let name = property("ProductName", "Edm.String");
        let c = |op, value| Condition::new("ProductName", op, value);
        assert_eq!(
            condition(&c(Operator::Contains, json!("bolt")), &name, Version::V2).unwrap(),
            "substringof('bolt',ProductName)"
        );
        assert_eq!(
            condition(&c(Operator::Contains, json!("bolt")), &name, Version::V4).unwrap(),
            "contains(ProductName,'bolt')"
        );
        assert_eq!(
            condition(&c(Operator::EqualTo, json!(["a", "b"])), &name, Version::V4).unwrap(),
            "(ProductName eq 'a' or ProductName eq 'b')"
        );
        let price = property("Price", "Edm.Decimal");
        let between = Condition::new("Price", Operator::Between, json!([10, 20]));
        assert_eq!(
            condition(&between, &price, Version::V2).unwrap(),
            "(Price ge 10M and Price le 20M)"
        );
    }

    #[test]
    fn entity_ids_give_their_key_values() {
        let key = |id: &str, set: &str| key_of(id, set);
        assert_eq!(
            key("A_Product('P1')", "A_Product"),
            [(None, "P1".to_string())]
        );
        assert_eq!(
            key(
                "https://s4.example.com/sap/opu/odata/sap/API_PRODUCT_SRV/A_Product('O''Brien%2C%20Ltd')",
                "A_Product"
            ),
            [(None, "O'Brien, Ltd".to_string())]
        );
        assert_eq!(
            key("Texts(Product='a,b',Language='EN')", "Texts"),
            [
                (Some("Product".to_string()), "a,b".to_string()),
                (Some("Language".to_string()), "EN".to_string())
            ]
        );
        assert_eq!(key("Orders(12L)", "Orders"), [(None, "12".to_string())]);
        assert_eq!(
            key("Items(guid'0050-56')", "Items"),
            [(None, "0050-56".to_string())]
        );
        assert!(key("Other('x')", "A_Product").is_empty());
    }

    #[test]
    fn v2_values_read_and_write_as_the_catalog_types() {
        let changed = property("Changed", "Edm.DateTimeOffset");
        assert_eq!(
            read_value(json!("/Date(1796025600000+0060)/"), &changed),
            json!("2026-11-30T08:00:00.000Z")
        );
        assert_eq!(
            read_value(json!("/Date(-1000)/"), &changed),
            json!("1969-12-31T23:59:59.000Z")
        );
        assert_eq!(
            read_value(json!("2026-11-30T08:00:00Z"), &changed),
            json!("2026-11-30T08:00:00Z")
        );
        assert_eq!(
            read_value(json!("42"), &property("N", "Edm.Int64")),
            json!(42)
        );
        assert_eq!(
            write_value(json!("2026-11-30T08:00:00Z"), &changed, Version::V2),
            json!("/Date(1796025600000+0000)/")
        );
        assert_eq!(
            write_value(json!(12.5), &property("P", "Edm.Decimal"), Version::V2),
            json!("12.5")
        );
        assert_eq!(
            write_value(json!(12.5), &property("P", "Edm.Decimal"), Version::V4),
            json!(12.5)
        );
    }
}
