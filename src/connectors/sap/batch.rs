//! OData's `$batch` in its multipart form (v2, and v4 alike): many changes in one
//! request, each in a change set of its own so that SAP takes or refuses each alone, and
//! the answer read back change by change.

use super::Change;
use super::metadata::Version;

/// The body of a `$batch` request of `changes`, in order.
pub fn request(changes: &[&Change], version: Version, boundary: &str) -> String {
    let mut out = String::new();
    for (n, change) in changes.iter().enumerate() {
        let set = format!("changeset_{}", n + 1);
        out += &format!("--{boundary}\r\nContent-Type: multipart/mixed; boundary={set}\r\n\r\n");
        out += &format!(
            "--{set}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        );
        out += &format!("{} {} HTTP/1.1\r\n", change.verb(version), change.path);
        out += "Accept: application/json\r\n";
        match &change.body {
            Some(body) => {
                let text = body.to_string();
                out += &format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}\r\n",
                    text.len()
                );
            }
            None => out += "\r\n",
        }
        out += &format!("--{set}--\r\n\r\n");
    }
    out += &format!("--{boundary}--\r\n");
    out
}

/// The status and body of each change's answer, in order, from a `$batch` answer of
/// content type `content_type`. A change set answers with its changes' answers, or, when
/// it failed, with one answer for the whole set: either way its first answer is its
/// change's.
pub fn answers(content_type: &str, body: &str) -> Result<Vec<(u16, String)>, String> {
    let boundary = boundary_of(content_type)
        .ok_or_else(|| format!("the $batch answer is not multipart ({content_type})"))?;
    parts(body, &boundary)
        .into_iter()
        .map(|part| {
            let (headers, content) = split_headers(part);
            match boundary_of(&header(headers, "content-type").unwrap_or_default()) {
                Some(inner) => {
                    let first = parts(content, &inner)
                        .into_iter()
                        .next()
                        .ok_or("a change set of the $batch answer is empty")?;
                    http_answer(split_headers(first).1)
                }
                None => http_answer(content),
            }
        })
        .collect()
}

/// `boundary=…` of a multipart content type, unquoted.
fn boundary_of(content_type: &str) -> Option<String> {
    if !content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/")
    {
        return None;
    }
    content_type.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("boundary")).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The parts between `--boundary` lines, up to `--boundary--`.
fn parts<'b>(body: &'b str, boundary: &str) -> Vec<&'b str> {
    let delimiter = format!("--{boundary}");
    let mut out = Vec::new();
    for chunk in body.split(delimiter.as_str()).skip(1) {
        if chunk.starts_with("--") {
            break;
        }
        out.push(
            chunk
                .trim_start_matches(['\r', '\n'])
                .trim_end_matches(['\r', '\n']),
        );
    }
    out
}

/// A part's header lines and its content, split at the first empty line.
fn split_headers(part: &str) -> (&str, &str) {
    for sep in ["\r\n\r\n", "\n\n"] {
        if let Some(i) = part.find(sep) {
            return (&part[..i], &part[i + sep.len()..]);
        }
    }
    (part, "")
}

fn header(headers: &str, name: &str) -> Option<String> {
    headers.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// `HTTP/1.1 201 Created` and its body.
fn http_answer(text: &str) -> Result<(u16, String), String> {
    let (head, body) = split_headers(text);
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("a part of the $batch answer is not an HTTP answer: {head}"))?;
    Ok((status, body.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::framework::catalog::Operation;

    #[test]
    fn each_change_goes_in_a_change_set_of_its_own() {
        let insert = Change {
            operation: Operation::Insert,
            path: "A_Product".into(),
            body: Some(serde_json::json!({"Product": "N1"})),
        };
        let delete = Change {
            operation: Operation::Delete,
            path: "A_Product('P1')".into(),
            body: None,
        };
        let text = request(&[&insert, &delete], Version::V2, "b");
        assert!(text.starts_with("--b\r\nContent-Type: multipart/mixed; boundary=changeset_1\r\n"));
        assert!(text.contains("POST A_Product HTTP/1.1\r\n"));
        assert!(text.contains("\r\n\r\n{\"Product\":\"N1\"}\r\n--changeset_1--"));
        assert!(text.contains("DELETE A_Product('P1') HTTP/1.1\r\n"));
        assert!(text.ends_with("--b--\r\n"));
    }

    #[test]
    fn answers_are_read_change_by_change() {
        let body = "--ans\r\nContent-Type: multipart/mixed; boundary=cs1\r\n\r\n\
            --cs1\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 201 Created\r\nContent-Type: application/json\r\n\r\n{\"d\":{}}\r\n--cs1--\r\n\
            --ans\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 400 Bad Request\r\n\r\n{\"error\":{\"code\":\"X\"}}\r\n\
            --ans--\r\n";
        let got = answers("multipart/mixed; boundary=ans", body).unwrap();
        assert_eq!(got[0].0, 201);
        assert_eq!(got[1], (400, "{\"error\":{\"code\":\"X\"}}".to_string()));
        assert!(answers("application/json", "{}").is_err());
    }
}
