//! One flat JSON object per run, written by hand (no serde in this crate), and the small
//! reader `compare` uses on its children's lines.

use std::fmt::Write as _;

/// A JSON value of a flat report.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string.
    Str(String),
    /// A number (non-finite numbers are written as `null`).
    Num(f64),
    /// An integer.
    Int(u64),
    /// A boolean.
    Bool(bool),
    /// `null`.
    Null,
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Num(n)
    }
}
impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::Int(n)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// An ordered list of fields, written as one JSON object on one line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    fields: Vec<(&'static str, Value)>,
}

impl Report {
    /// An empty report.
    pub fn new() -> Self {
        Report::default()
    }

    /// Adds (or replaces) a field.
    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) -> &mut Self {
        let value = value.into();
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((key, value)),
        }
        self
    }

    /// The field of that name.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The JSON line.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{");
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_str(&mut out, k);
            out.push(':');
            match v {
                Value::Str(s) => write_str(&mut out, s),
                Value::Num(n) if n.is_finite() => {
                    // Round to 3 significant decimals past the point: figures, not noise.
                    let _ = write!(out, "{}", (n * 1000.0).round() / 1000.0);
                }
                Value::Num(_) | Value::Null => out.push_str("null"),
                Value::Int(n) => {
                    let _ = write!(out, "{n}");
                }
                Value::Bool(b) => {
                    let _ = write!(out, "{b}");
                }
            }
        }
        out.push('}');
        out
    }
}

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Reads back a flat object as [`Report::to_json`] writes it (strings, numbers, booleans,
/// null; no nesting). `None` for anything else.
pub fn parse_flat(line: &str) -> Option<Vec<(String, Value)>> {
    let mut p = Parser {
        s: line.trim().as_bytes(),
        i: 0,
    };
    p.expect(b'{')?;
    let mut out = Vec::new();
    p.ws();
    if p.peek()? == b'}' {
        p.i += 1;
        return p.end().then_some(out);
    }
    loop {
        p.ws();
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        let value = match p.peek()? {
            b'"' => Value::Str(p.string()?),
            b't' => p.word("true", Value::Bool(true))?,
            b'f' => p.word("false", Value::Bool(false))?,
            b'n' => p.word("null", Value::Null)?,
            _ => p.number()?,
        };
        out.push((key, value));
        p.ws();
        match p.next()? {
            b',' => continue,
            b'}' => return p.end().then_some(out),
            _ => return None,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }
    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }
    fn end(&mut self) -> bool {
        self.ws();
        self.i == self.s.len()
    }
    fn word(&mut self, w: &str, v: Value) -> Option<Value> {
        let end = self.i + w.len();
        (self.s.get(self.i..end)? == w.as_bytes()).then(|| {
            self.i = end;
            v
        })
    }
    fn number(&mut self) -> Option<Value> {
        let start = self.i;
        while matches!(
            self.peek(),
            Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
        ) {
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).ok()?;
        if let Ok(n) = text.parse::<u64>() {
            return Some(Value::Int(n));
        }
        text.parse::<f64>().ok().map(Value::Num)
    }
    fn string(&mut self) -> Option<String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.next()? {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => match self.next()? {
                    b'"' => out.push(b'"'),
                    b'\\' => out.push(b'\\'),
                    b'/' => out.push(b'/'),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'u' => {
                        let hex = std::str::from_utf8(self.s.get(self.i..self.i + 4)?).ok()?;
                        self.i += 4;
                        let c = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
                        let mut buf = [0; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => return None,
                },
                c => out.push(c),
            }
        }
    }
}

/// The number of a field, if it is one.
pub fn number(fields: &[(String, Value)], key: &str) -> Option<f64> {
    match fields.iter().find(|(k, _)| k == key)?.1 {
        Value::Num(n) => Some(n),
        Value::Int(n) => Some(n as f64),
        _ => None,
    }
}

/// The string of a field, if it is one.
pub fn string<'a>(fields: &'a [(String, Value)], key: &str) -> Option<&'a str> {
    match &fields.iter().find(|(k, _)| k == key)?.1 {
        Value::Str(s) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip() {
        let mut r = Report::new();
        r.set("client", "rd\"kafka\\\n\u{1}")
            .set("records", 1000u64)
            .set("records_per_sec", 1234.56789)
            .set("p99_ms", None::<f64>)
            .set("nan", f64::NAN)
            .set("idempotent", true)
            .set("records", 2000u64);
        let line = r.to_json();
        assert!(!line.contains('\n'));
        let back = parse_flat(&line).unwrap();
        assert_eq!(string(&back, "client"), Some("rd\"kafka\\\n\u{1}"));
        assert_eq!(number(&back, "records"), Some(2000.0));
        assert_eq!(number(&back, "records_per_sec"), Some(1234.568));
        assert_eq!(number(&back, "p99_ms"), None);
        assert_eq!(back.len(), 6);
        assert_eq!(parse_flat("{}"), Some(vec![]));
        for bad in [
            "",
            "{",
            "{\"a\":}",
            "{\"a\":1,}",
            "{\"a\":1} x",
            "[1]",
            "{\"a\":{\"b\":1}}",
        ] {
            assert_eq!(parse_flat(bad), None, "{bad}");
        }
    }
}
