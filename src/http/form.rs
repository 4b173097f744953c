//! `application/x-www-form-urlencoded`, the encoding of form bodies and query
//! strings: `&`-separated `name=value` pairs, `+` as space, `%XX` escapes.

use crate::Error;

/// Decodes form or query text. Bad escapes and bad UTF-8 answer 400.
pub(crate) fn form_pairs(text: &str) -> Result<Vec<(String, String)>, Error> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(name)?, percent_decode(value)?))
        })
        .collect()
}

/// Percent-encodes `text` for a query string: everything but
/// `A-Z a-z 0-9 - _ . ~` becomes `%XX`.
///
/// ```
/// assert_eq!(tinysse::http::percent_encode("a b/é"), "a%20b%2F%C3%A9");
/// ```
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> Result<String, Error> {
    let bad = || Error::BadRequest("bad percent-encoding");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(at + 1..at + 3).ok_or_else(bad)?;
                let digit = |byte: u8| (byte as char).to_digit(16).ok_or_else(bad);
                out.push((digit(hex[0])? * 16 + digit(hex[1])?) as u8);
                at += 2;
            }
            other => out.push(other),
        }
        at += 1;
    }
    String::from_utf8(out).map_err(|_| Error::BadRequest("form or query is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let pairs = form_pairs("data=a+b%0Ac&topic=t&empty=&flag").unwrap();
        assert_eq!(pairs[0], ("data".to_string(), "a b\nc".to_string()));
        assert_eq!(pairs[1], ("topic".to_string(), "t".to_string()));
        assert_eq!(pairs[2], ("empty".to_string(), String::new()));
        assert_eq!(pairs[3], ("flag".to_string(), String::new()));
        for bad in ["a=%zz", "a=%4", "a=%ff", "a=%+1", "a=%", "%é"] {
            assert_eq!(form_pairs(bad).unwrap_err().status(), 400, "{bad}");
        }
        assert_eq!(percent_encode("a b&c"), "a%20b%26c");
    }
}
