//! serde's messages in the words of someone editing a flow file, and where in the file they
//! point; shared by the flow model, node configs and record decoding.

/// A JSON pointer (`/nodes/2/config`) from serde_path_to_error's path.
pub fn pointer_from_serde_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } => {
                out.push('/');
                out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    out
}

/// serde's message about a value of the wrong shape, in the words of someone editing a flow
/// file: "invalid type: floating point `1e30`, expected usize" becomes "the number 1e30
/// where a whole number of 0 or more belongs".
pub fn serde_in_words(message: &str) -> String {
    let message = message.strip_prefix("invalid type: ").unwrap_or(message);
    let message = message.strip_prefix("invalid value: ").unwrap_or(message);
    if let Some(rest) = message.strip_prefix("unknown field ") {
        return match rest.split_once(", expected ") {
            Some((field, expected)) => {
                let expected = expected.trim_start_matches("one of ");
                format!("unknown setting {field}; the settings here are {expected}")
            }
            None => format!("unknown setting {rest}"),
        };
    }
    if let Some(field) = message.strip_prefix("missing field ") {
        return format!("the setting {field} is missing");
    }
    let Some((found, expected)) = message.rsplit_once(", expected ") else {
        return message.to_string();
    };
    let found = if let Some(n) = found
        .strip_prefix("floating point ")
        .or_else(|| found.strip_prefix("integer "))
    {
        format!("the number {}", n.trim_matches('`'))
    } else if let Some(text) = found.strip_prefix("string ") {
        format!("the text {text}")
    } else if found == "map" {
        "an object ({…})".to_string()
    } else if found == "sequence" {
        "a list ([…])".to_string()
    } else if found == "unit value" || found == "null" {
        "null".to_string()
    } else if let Some(b) = found.strip_prefix("boolean ") {
        b.trim_matches('`').to_string()
    } else {
        found.to_string()
    };
    let expected = match expected {
        "usize" | "u64" | "u32" | "u16" | "u8" => "a whole number of 0 or more",
        "i64" | "i32" | "i16" | "i8" | "isize" => "a whole number",
        "f64" | "f32" => "a number",
        "a string" | "string" => "text",
        "a boolean" | "bool" => "true or false",
        "a sequence" => "a list ([…])",
        e if e.starts_with("struct ") || e == "a map" || e.starts_with("a map") => {
            "an object ({…})"
        }
        e => return format!("{found} where {e} belongs"),
    };
    format!("{found} where {expected} belongs")
}

/// serde_json appends " at line X column Y" to its messages; we say it once, up front.
pub fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}
