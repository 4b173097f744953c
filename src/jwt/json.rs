//! A small JSON reader (RFC 8259), bounded in size, depth and value count.
//!
//! It reads one JSON text into a [`Value`] tree: objects, arrays, strings with
//! every escape, numbers (read as `f64` when asked), `true`, `false` and
//! `null`. It refuses
//! duplicate object keys, trailing text, bad UTF-8 and anything past its limits.

// Implementation notes: a recursive descent over bytes, one method per grammar
// rule. Recursion depth is capped by MAX_DEPTH, so the stack stays small; the
// total number of values by MAX_VALUES, so a document of `[[],[],...]` cannot
// allocate without bound. The whole text is checked as UTF-8 first, so string
// contents copied between ASCII delimiters are UTF-8 too.

use super::number;

/// Longest JSON text accepted, in bytes; longer texts are refused unread.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 8 * 1024;
/// Deepest nesting of arrays and objects accepted; deeper texts are refused.
pub(crate) const MAX_DEPTH: usize = 16;
/// Most values (of any kind, keys not counted) in one text; more are refused.
pub(crate) const MAX_VALUES: usize = 1024;

/// One JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    /// As written, within the range of `f64` (JSON has no NaN or
    /// infinity); [`Value::as_number`] reads it.
    Number(String),
    String(String),
    Array(Vec<Value>),
    /// Members in document order; keys are unique.
    Object(Vec<(String, Value)>),
}

impl Value {
    /// Returns the member named `key` if this is an object that has one.
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value),
            _ => None,
        }
    }

    /// Returns the text if this is a string.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// Returns the elements if this is an array.
    pub(crate) fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(elements) => Some(elements),
            _ => None,
        }
    }

    /// Returns the number, the nearest `f64`, if this is one.
    pub(crate) fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(number) => Some(number::to_f64(number.as_bytes())),
            _ => None,
        }
    }
}

/// Reads `text` as exactly one JSON value, with optional whitespace around it.
pub(crate) fn parse(text: &[u8]) -> Result<Value, &'static str> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err("json text is too long");
    }
    // RFC 8259 §8.1: "JSON text exchanged between systems that are not part
    // of a closed ecosystem MUST be encoded using UTF-8".
    if std::str::from_utf8(text).is_err() {
        return Err("json text is not valid utf-8");
    }
    let mut reader = Reader {
        text,
        position: 0,
        values: 0,
    };
    // §2: "JSON-text = ws value ws"
    reader.skip_whitespace();
    let value = reader.value(0)?;
    reader.skip_whitespace();
    if reader.position != text.len() {
        return Err("json text has trailing characters");
    }
    Ok(value)
}

struct Reader<'a> {
    text: &'a [u8],
    // Always at most `text.len()`, so adding one to it cannot overflow.
    position: usize,
    values: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.position).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.position += 1;
        Some(byte)
    }

    /// Consumes `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.position += 1;
        }
        found
    }

    fn skip_whitespace(&mut self) {
        // §2: "ws = *( %x20 / %x09 / %x0A / %x0D )"
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.position += 1;
        }
    }

    // §3: "value = false / null / true / object / array / number / string"
    fn value(&mut self, depth: usize) -> Result<Value, &'static str> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err("json text has too many values");
        }
        match self.peek() {
            // Checked before descending, so recursion stops at MAX_DEPTH.
            Some(b'{' | b'[') if depth >= MAX_DEPTH => Err("json text is nested too deeply"),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(_) => Err("json text has an unexpected character"),
            None => Err("json text ends early"),
        }
    }

    // §3: "The literal names MUST be lowercase."
    fn literal(&mut self, name: &[u8], value: Value) -> Result<Value, &'static str> {
        let rest = self.text.get(self.position..).unwrap_or_default();
        if !rest.starts_with(name) {
            return Err("json text has an unknown literal");
        }
        self.position += name.len();
        Ok(value)
    }

    // §4: "object = begin-object [ member *( value-separator member ) ]
    // end-object" and "member = string name-separator value".
    fn object(&mut self, depth: usize) -> Result<Value, &'static str> {
        self.position += 1; // The '{' seen by `value`.
        let mut members: Vec<(String, Value)> = Vec::new();
        self.skip_whitespace();
        if self.eat(b'}') {
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err("json object key is not a string");
            }
            let key = self.string()?;
            self.skip_whitespace();
            if !self.eat(b':') {
                return Err("json object key is not followed by a colon");
            }
            self.skip_whitespace();
            let value = self.value(depth)?;
            // §4: "The names within an object SHOULD be unique." RFC 7519 §4
            // lets a JWT parser "either reject JWTs with duplicate Claim Names
            // or use a JSON parser that returns only the lexically last
            // duplicate member name". We reject: two readers of one token must
            // never disagree about which claim it carries.
            if members.iter().any(|(name, _)| *name == key) {
                return Err("json object has a duplicate key");
            }
            members.push((key, value));
            self.skip_whitespace();
            match self.next() {
                Some(b',') => continue,
                Some(b'}') => return Ok(Value::Object(members)),
                _ => return Err("json object member is not followed by a comma or a brace"),
            }
        }
    }

    // §5: "array = begin-array [ value *( value-separator value ) ] end-array"
    fn array(&mut self, depth: usize) -> Result<Value, &'static str> {
        self.position += 1; // The '[' seen by `value`.
        let mut elements = Vec::new();
        self.skip_whitespace();
        if self.eat(b']') {
            return Ok(Value::Array(elements));
        }
        loop {
            self.skip_whitespace();
            elements.push(self.value(depth)?);
            self.skip_whitespace();
            match self.next() {
                Some(b',') => continue,
                Some(b']') => return Ok(Value::Array(elements)),
                _ => return Err("json array element is not followed by a comma or a bracket"),
            }
        }
    }

    // §6: "number = [ minus ] int [ frac ] [ exp ]", "int = zero / ( digit1-9
    // *DIGIT )", "frac = decimal-point 1*DIGIT", "exp = e [ minus / plus ]
    // 1*DIGIT". The grammar is checked here, then `number::to_f64` reads
    // the text (as `f64::from_str` would, which is more lenient: "inf", "+1").
    fn number(&mut self) -> Result<Value, &'static str> {
        let start = self.position;
        self.eat(b'-');
        match self.next() {
            Some(b'0') => {}
            Some(b'1'..=b'9') => self.skip_digits(),
            _ => return Err("json number has no integer part"),
        }
        if self.eat(b'.') {
            if !self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
                return Err("json number has no digit after its decimal point");
            }
            self.skip_digits();
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'-') {
                self.eat(b'+');
            }
            if !self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
                return Err("json number has no digit in its exponent");
            }
            self.skip_digits();
        }
        // A leading zero followed by a digit ("01") stops the grammar after
        // the zero; the digit is then trailing text, refused by the caller.
        let text = self.text.get(start..self.position).unwrap_or_default();
        // §6: "This specification allows implementations to set limits on the
        // range and precision of numbers accepted." Infinity is not JSON.
        if !number::is_finite(text) {
            return Err("json number is out of range");
        }
        // Read as an f64 only if asked (`as_number`): in a token, only the
        // dates are, after the signature is checked. The text is ASCII.
        Ok(Value::Number(String::from_utf8_lossy(text).into_owned()))
    }

    fn skip_digits(&mut self) {
        while self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
            self.position += 1;
        }
    }

    // §7: "string = quotation-mark *char quotation-mark", where "char =
    // unescaped / escape ( %x22 / %x5C / %x2F / %x62 / %x66 / %x6E / %x72 /
    // %x74 / %x75 4HEXDIG )" and "unescaped = %x20-21 / %x23-5B / %x5D-10FFFF".
    fn string(&mut self) -> Result<String, &'static str> {
        self.position += 1; // The opening quotation mark.
        let mut bytes = Vec::new();
        loop {
            match self.next() {
                None => return Err("json string is not terminated"),
                Some(b'"') => break,
                Some(b'\\') => {
                    let unescaped = match self.next() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => self.unicode_escape()?,
                        None => return Err("json string is not terminated"),
                        Some(_) => return Err("json string has an unknown escape"),
                    };
                    let mut buffer = [0; 4];
                    bytes.extend_from_slice(unescaped.encode_utf8(&mut buffer).as_bytes());
                }
                // §7: "All Unicode characters may be placed within the
                // quotation marks, except for the characters that MUST be
                // escaped: quotation mark, reverse solidus, and the control
                // characters (U+0000 through U+001F)."
                Some(0x00..=0x1f) => return Err("json string has an unescaped control character"),
                Some(byte) => bytes.push(byte),
            }
        }
        // The whole text was valid UTF-8 and every cut was at an ASCII byte,
        // so this cannot fail; it is still checked rather than assumed.
        String::from_utf8(bytes).map_err(|_| "json string is not valid utf-8")
    }

    /// Reads the `XXXX` of a `\uXXXX` escape, and a second escape after it
    /// when the first is a high surrogate.
    fn unicode_escape(&mut self) -> Result<char, &'static str> {
        let first = self.hex4()?;
        // §7: "To escape an extended character that is not in the Basic
        // Multilingual Plane, the character is represented as a 12-character
        // sequence, encoding the UTF-16 surrogate pair."
        if (0xdc00..=0xdfff).contains(&first) {
            return Err("json string has a lone low surrogate");
        }
        if !(0xd800..=0xdbff).contains(&first) {
            return char::from_u32(first).ok_or("json string has an invalid escape");
        }
        if !(self.eat(b'\\') && self.eat(b'u')) {
            return Err("json string has a lone high surrogate");
        }
        let second = self.hex4()?;
        if !(0xdc00..=0xdfff).contains(&second) {
            return Err("json string has a lone high surrogate");
        }
        let code_point = 0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00);
        char::from_u32(code_point).ok_or("json string has an invalid escape")
    }

    fn hex4(&mut self) -> Result<u32, &'static str> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = self
                .next()
                .and_then(|byte| char::from(byte).to_digit(16))
                .ok_or("json string has a bad \\u escape")?;
            code = code * 16 + digit;
        }
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_DEPTH, MAX_DOCUMENT_BYTES, MAX_VALUES, Value, parse};

    fn string(text: &str) -> Value {
        Value::String(text.to_owned())
    }

    fn number(text: &str) -> Value {
        Value::Number(text.to_owned())
    }

    #[test]
    fn valid_documents() {
        let valid: Vec<(&[u8], Value)> = vec![
            (b"null", Value::Null),
            (b"true", Value::Bool(true)),
            (b" \t\r\nfalse \t\r\n", Value::Bool(false)),
            (b"0", number("0")),
            (b"-0", number("-0")),
            (b"1798000000", number("1798000000")),
            (b"-12.5e-1", number("-12.5e-1")),
            (b"1E+2", number("1E+2")),
            (b"1.5e3", number("1.5e3")),
            (b"1e-400", number("1e-400")),
            (b"\"\"", string("")),
            (b"\"caf\xc3\xa9 \xf0\x9f\x98\x80\"", string("café 😀")),
            (br#""\"\\\/\b\f\n\r\t""#, string("\"\\/\u{8}\u{c}\n\r\t")),
            (br#""\u0041\u00e9\u20AC""#, string("Aé€")),
            (br#""\ud83d\ude00""#, string("😀")),
            (br#""\u0000""#, string("\0")),
            (b"[]", Value::Array(vec![])),
            (
                b"[ 1 , \"a\" , [ ] ]",
                Value::Array(vec![number("1"), string("a"), Value::Array(vec![])]),
            ),
            (b"{}", Value::Object(vec![])),
            (
                br#"{ "a" : 1 , "b" : { "c" : null } }"#,
                Value::Object(vec![
                    ("a".to_owned(), number("1")),
                    (
                        "b".to_owned(),
                        Value::Object(vec![("c".to_owned(), Value::Null)]),
                    ),
                ]),
            ),
        ];
        for (text, expected) in valid {
            assert_eq!(
                parse(text),
                Ok(expected),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn numbers_read_as_the_nearest_f64() {
        let numbers: [(&[u8], f64); 8] = [
            (b"0", 0.0),
            (b"-0", -0.0),
            (b"1798000000", 1798000000.0),
            (b"-12.5e-1", -1.25),
            (b"1E+2", 100.0),
            (b"1.5e3", 1500.0),
            (b"1e-400", 0.0),
            (b"1.7976931348623157e308", f64::MAX),
        ];
        for (text, expected) in numbers {
            let read = parse(text).ok().and_then(|value| value.as_number());
            assert_eq!(
                read.map(f64::to_bits),
                Some(expected.to_bits()),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn invalid_documents() {
        let invalid: &[(&[u8], &str)] = &[
            (b"", "json text ends early"),
            (b"   ", "json text ends early"),
            (b"\"abc", "json string is not terminated"),
            (b"\"abc\\", "json string is not terminated"),
            (br#""\x""#, "json string has an unknown escape"),
            (br#""\'""#, "json string has an unknown escape"),
            (br#""\u12""#, "json string has a bad \\u escape"),
            (br#""\u12G4""#, "json string has a bad \\u escape"),
            (br#""\ud83d""#, "json string has a lone high surrogate"),
            (br#""\ud83dx""#, "json string has a lone high surrogate"),
            (
                br#""\ud83d\u0041""#,
                "json string has a lone high surrogate",
            ),
            (
                br#""\ud83d\ud83d""#,
                "json string has a lone high surrogate",
            ),
            (br#""\ude00""#, "json string has a lone low surrogate"),
            (
                b"\"a\tb\"",
                "json string has an unescaped control character",
            ),
            (
                b"\"a\nb\"",
                "json string has an unescaped control character",
            ),
            (
                b"\"\x00\"",
                "json string has an unescaped control character",
            ),
            (b"\"\xff\"", "json text is not valid utf-8"),
            (b"\"\xed\xa0\x80\"", "json text is not valid utf-8"),
            (b"01", "json text has trailing characters"),
            (b"1.", "json number has no digit after its decimal point"),
            (b"1.e5", "json number has no digit after its decimal point"),
            (b".5", "json text has an unexpected character"),
            (b"+1", "json text has an unexpected character"),
            (b"-", "json number has no integer part"),
            (b"-a", "json number has no integer part"),
            (b"1e", "json number has no digit in its exponent"),
            (b"1e+", "json number has no digit in its exponent"),
            (b"0x10", "json text has trailing characters"),
            (b"1e400", "json number is out of range"),
            (b"-1e400", "json number is out of range"),
            (b"NaN", "json text has an unexpected character"),
            (b"Infinity", "json text has an unexpected character"),
            (b"-Infinity", "json number has no integer part"),
            (b"tru", "json text has an unknown literal"),
            (b"True", "json text has an unexpected character"),
            (b"nul", "json text has an unknown literal"),
            (b"[1,]", "json text has an unexpected character"),
            (
                b"[1 2]",
                "json array element is not followed by a comma or a bracket",
            ),
            (
                b"[1",
                "json array element is not followed by a comma or a bracket",
            ),
            (b"[", "json text ends early"),
            (br#"{"a":1,}"#, "json object key is not a string"),
            (br#"{a:1}"#, "json object key is not a string"),
            (br#"{"a" 1}"#, "json object key is not followed by a colon"),
            (
                br#"{"a":1"#,
                "json object member is not followed by a comma or a brace",
            ),
            (
                br#"{"a":1 "b":2}"#,
                "json object member is not followed by a comma or a brace",
            ),
            (br#"{"a":1,"a":2}"#, "json object has a duplicate key"),
            (b"{} {}", "json text has trailing characters"),
            (b"null x", "json text has trailing characters"),
            (b"\xef\xbb\xbfnull", "json text has an unexpected character"),
            (b"\x0cnull", "json text has an unexpected character"),
            (b"[1]]", "json text has trailing characters"),
        ];
        for (text, reason) in invalid {
            assert_eq!(
                parse(text),
                Err(*reason),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn nesting_limit() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(parse(nested(MAX_DEPTH).as_bytes()).is_ok());
        assert_eq!(
            parse(nested(MAX_DEPTH + 1).as_bytes()),
            Err("json text is nested too deeply")
        );
        let objects = format!(
            "{}1{}",
            "{\"a\":".repeat(MAX_DEPTH + 1),
            "}".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(
            parse(objects.as_bytes()),
            Err("json text is nested too deeply")
        );
        // Far past the limit, refused without exhausting the stack.
        assert_eq!(
            parse(nested(4000).as_bytes()),
            Err("json text is nested too deeply")
        );
    }

    #[test]
    fn value_count_limit() {
        // The outer array is one value, so MAX_VALUES - 1 elements fit.
        let array = |count: usize| format!("[{}]", vec!["0"; count].join(","));
        assert!(parse(array(MAX_VALUES - 1).as_bytes()).is_ok());
        assert_eq!(
            parse(array(MAX_VALUES).as_bytes()),
            Err("json text has too many values")
        );
    }

    #[test]
    fn size_limit() {
        let padded = |length: usize| format!("\"{}\"", "a".repeat(length - 2));
        assert!(parse(padded(MAX_DOCUMENT_BYTES).as_bytes()).is_ok());
        assert_eq!(
            parse(padded(MAX_DOCUMENT_BYTES + 1).as_bytes()),
            Err("json text is too long")
        );
    }

    #[test]
    fn accessors() {
        let document = parse(br#"{"s":"x","n":2.5,"a":[1],"o":{"k":true}}"#).unwrap();
        assert_eq!(document.get("s").and_then(Value::as_str), Some("x"));
        assert_eq!(document.get("n").and_then(Value::as_number), Some(2.5));
        assert_eq!(
            document.get("a").and_then(Value::as_array),
            Some(&[number("1")][..])
        );
        assert_eq!(
            document.get("o").and_then(|o| o.get("k")),
            Some(&Value::Bool(true))
        );
        assert_eq!(document.get("missing"), None);
        assert_eq!(document.get("s").and_then(Value::as_number), None);
        assert_eq!(document.get("n").and_then(Value::as_str), None);
        assert_eq!(Value::Null.get("s"), None);
        assert_eq!(Value::Null.as_array(), None);
    }
}
