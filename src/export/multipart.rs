//! `multipart/form-data` bodies (RFC 7578), just the part the intake needs: named file parts.

use super::http::find;

pub struct Part<'a> {
    /// The form field name.
    pub name: &'a str,
    pub filename: &'a str,
    pub content_type: &'a str,
    pub data: &'a [u8],
}

/// A complete body and the `Content-Type` header value that goes with it.
pub struct Form {
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Builds the body. `boundary_seed` gives fresh random bytes for the boundary; a boundary that
/// happens to occur inside a part's data is replaced (the data is compressed, so it can
/// contain anything).
pub fn build(parts: &[Part], mut boundary_seed: impl FnMut() -> [u8; 16]) -> Form {
    let boundary = loop {
        let candidate = format!("------------------------{}", hex(&boundary_seed()));
        let dashed = format!("--{candidate}");
        if parts
            .iter()
            .all(|p| find(p.data, dashed.as_bytes()).is_none())
        {
            break candidate;
        }
    };
    let size: usize = parts.iter().map(|p| p.data.len() + 200).sum();
    let mut body = Vec::with_capacity(size + boundary.len() + 8);
    for part in parts {
        body.extend_from_slice(b"--");
        body.extend_from_slice(boundary.as_bytes());
        body.extend_from_slice(b"\r\n");
        let head = format!(
            "Content-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
            quoted(part.name),
            quoted(part.filename),
            part.content_type
        );
        body.extend_from_slice(head.as_bytes());
        body.extend_from_slice(part.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--");
    body.extend_from_slice(boundary.as_bytes());
    body.extend_from_slice(b"--\r\n");
    Form {
        content_type: format!("multipart/form-data; boundary={boundary}"),
        body,
    }
}

/// Names here are ours and plain; still, keep quotes and line breaks out of the header.
fn quoted(s: &str) -> String {
    s.chars()
        .map(|c| if c == '"' || c.is_control() { '_' } else { c })
        .collect()
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_parts() {
        let form = build(
            &[
                Part {
                    name: "event",
                    filename: "event.json",
                    content_type: "application/json",
                    data: b"{}",
                },
                Part {
                    name: "profile.pprof",
                    filename: "profile.pprof",
                    content_type: "application/octet-stream",
                    data: &[0, 1, 2],
                },
            ],
            || [0xab; 16],
        );
        let b = "------------------------abababababababababababababababab";
        assert_eq!(
            form.content_type,
            format!("multipart/form-data; boundary={b}")
        );
        let mut want = Vec::new();
        want.extend_from_slice(format!("--{b}\r\nContent-Disposition: form-data; name=\"event\"; filename=\"event.json\"\r\nContent-Type: application/json\r\n\r\n{{}}\r\n").as_bytes());
        want.extend_from_slice(format!("--{b}\r\nContent-Disposition: form-data; name=\"profile.pprof\"; filename=\"profile.pprof\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        want.extend_from_slice(&[0, 1, 2]);
        want.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
        assert_eq!(
            String::from_utf8_lossy(&form.body),
            String::from_utf8_lossy(&want)
        );
    }

    #[test]
    fn boundary_inside_data_is_replaced() {
        let clash = format!("xx----------------------------{}yy", hex(&[1; 16]));
        let mut seeds = [[1u8; 16], [2u8; 16]].into_iter();
        let form = build(
            &[Part {
                name: "a",
                filename: "a",
                content_type: "text/plain",
                data: clash.as_bytes(),
            }],
            || seeds.next().unwrap(),
        );
        assert!(
            form.content_type.ends_with(&hex(&[2; 16])),
            "{}",
            form.content_type
        );
    }
}
