//! The one reader for the JavaScript-style objects MailStore and Axigen answer with.
//!
//! Both vendors document their answers as object literals with unquoted keys
//! (`{ succeeded: true }`, `{ success: true, sessionKey: "..." }`), and servers in the field
//! send either that or strict JSON. ONE rule holds for every answer read here: a key given
//! twice (quoted or not, escaped or not, at any depth) makes the whole answer unreadable,
//! whatever the values, because
//! `{ succeeded: false, succeeded: true }` has no honest reading. Callers turn `None` into
//! "backend unavailable", never into a yes or a no.

/// A member value, as far as any answer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Bool(bool),
    Null,
    Str(String),
    Number,
    /// An object or array: well-formed, contents not kept.
    Nested,
}

/// The members of one object, in the order written; no key occurs twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object(Vec<(String, Value)>);

impl Object {
    /// The value of `key`, if the object has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value of `key` if it is a boolean.
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The value of `key` if it is a non-empty string.
    pub fn text(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Value::Str(s) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Nesting deeper than this is not an answer any vendor gives (and bounds the recursion).
const MAX_DEPTH: usize = 16;

/// Parses one object: strict JSON, or with identifier keys (`{ success: true }`). Strings
/// are JSON strings (double quotes, JSON escapes); values are strings, numbers, `true`,
/// `false`, `null`, objects and arrays. A key given twice makes the whole object `None`:
/// `{ success: false, success: true }` has no honest reading.
pub fn parse_object(body: &[u8]) -> Option<Object> {
    read_object(body).ok()
}

/// Why a body is not an [`Object`]: callers that must tell a page that is no answer at all
/// (an HTML login page) from an answer that contradicts itself need the difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// Not one well-formed object: HTML, an empty body, a syntax error.
    NotAnObject,
    /// An object in which some key is given twice (at any depth): it has no honest reading.
    DuplicateKey,
}

/// [`parse_object`], saying why a body is not an object.
pub fn read_object(body: &[u8]) -> Result<Object, Unreadable> {
    let text = std::str::from_utf8(body).map_err(|_| Unreadable::NotAnObject)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        duplicate: false,
    };
    p.ws();
    let members = p.object(0);
    p.ws();
    match members {
        _ if p.duplicate => Err(Unreadable::DuplicateKey),
        Some(members) if p.i == p.s.len() => Ok(Object(members)),
        _ => Err(Unreadable::NotAnObject),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    /// Set when a key was given twice; parsing stops there.
    duplicate: bool,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        if self.peek() == Some(b) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    fn object(&mut self, depth: usize) -> Option<Vec<(String, Value)>> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(b'{')?;
        self.ws();
        let mut members: Vec<(String, Value)> = Vec::new();
        if self.eat(b'}').is_some() {
            return Some(members);
        }
        loop {
            let key = self.key()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            let value = self.value(depth)?;
            if members.iter().any(|(k, _)| *k == key) {
                self.duplicate = true;
                return None;
            }
            members.push((key, value));
            self.ws();
            if self.eat(b',').is_some() {
                self.ws();
                continue;
            }
            self.eat(b'}')?;
            return Some(members);
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(b'[')?;
        self.ws();
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.value(depth)?;
            self.ws();
            if self.eat(b',').is_some() {
                self.ws();
                continue;
            }
            return self.eat(b']');
        }
    }

    fn key(&mut self) -> Option<String> {
        let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$';
        match self.peek()? {
            b'"' => self.string(),
            c if ident(c) && !c.is_ascii_digit() => {
                let start = self.i;
                while self.peek().is_some_and(ident) {
                    self.i += 1;
                }
                std::str::from_utf8(&self.s[start..self.i])
                    .ok()
                    .map(str::to_string)
            }
            _ => None,
        }
    }

    /// A JSON string, decoded by serde_json once its end is found.
    fn string(&mut self) -> Option<String> {
        let start = self.i;
        self.eat(b'"')?;
        loop {
            match self.peek()? {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    break;
                }
                _ => self.i += 1,
            }
        }
        let token = std::str::from_utf8(self.s.get(start..self.i)?).ok()?;
        serde_json::from_str::<String>(token).ok()
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if !self.s.get(self.i..)?.starts_with(word) {
            return None;
        }
        let after = self.s.get(self.i + word.len()).copied();
        if after.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$') {
            return None;
        }
        self.i += word.len();
        Some(())
    }

    /// JSON's number grammar, value not kept.
    fn number(&mut self) -> Option<()> {
        let digits = |p: &mut Self| {
            let start = p.i;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                p.i += 1;
            }
            (p.i > start).then_some(())
        };
        let _ = self.eat(b'-');
        if self.eat(b'0').is_none() {
            if !self.peek().is_some_and(|c| (b'1'..=b'9').contains(&c)) {
                return None;
            }
            digits(self)?;
        }
        if self.eat(b'.').is_some() {
            digits(self)?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            digits(self)?;
        }
        Some(())
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        match self.peek()? {
            b'"' => self.string().map(Value::Str),
            b't' => self.literal(b"true").map(|_| Value::Bool(true)),
            b'f' => self.literal(b"false").map(|_| Value::Bool(false)),
            b'n' => self.literal(b"null").map(|_| Value::Null),
            b'{' => self.object(depth + 1).map(|_| Value::Nested),
            b'[' => self.array(depth + 1).map(|_| Value::Nested),
            b'-' | b'0'..=b'9' => self.number().map(|_| Value::Number),
            _ => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An object of every kind of member the vendors send: the seed of the mutation tests.
    pub(crate) const SEED: &[u8] =
        b"{ success: true, sessionKey: \"f25\\u00e9\", n: [-0.5e+3, {a: null}] }";

    /// Calls `f` with 20,000 deterministic mutations of `seed` (bytes changed, removed, cut):
    /// for the parsers' "never panics" tests.
    pub(crate) fn for_mutations_of(seed: &[u8], mut f: impl FnMut(&[u8])) {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut input = seed.to_vec();
            for _ in 0..3 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state % input.len() as u64) as usize;
                match state % 3 {
                    0 => input[at] = (state >> 24) as u8,
                    1 => {
                        input.remove(at);
                    }
                    _ => input.truncate(at),
                }
                if input.is_empty() {
                    break;
                }
            }
            f(&input);
        }
    }

    #[test]
    fn unquoted_and_quoted_keys() {
        for text in [
            &b"{ success: true, sessionKey: \"k\" }"[..],
            b"{\"success\":true,\"sessionKey\":\"k\"}\r\n",
            b"\xef\xbb\xbf{\n success : true ,\n sessionKey : \"k\", n: [1, -2.5e3, null, {a: {}}]\n}",
        ] {
            let o = parse_object(text).unwrap_or_else(|| panic!("{text:?}"));
            assert_eq!(o.bool("success"), Some(true));
            assert_eq!(o.text("sessionKey"), Some("k"));
        }
        let o = parse_object(b"{\"s\": \"a\\\"b\\u00e9\"}");
        assert_eq!(o.as_ref().and_then(|o| o.text("s")), Some("a\"b\u{e9}"));
    }

    #[test]
    fn duplicate_keys_are_no_answer_in_any_spelling_or_depth() {
        for text in [
            &b"{\"succeeded\":false,\"succeeded\":true}"[..],
            b"{ succeeded: false, succeeded: true }",
            b"{ succeeded: false, \"succeeded\": true }",
            b"{ succeeded: true, \"succ\\u0065eded\": true }",
            b"{ a: 1, b: { c: 1, c: 2 } }",
            b"{ a: [ { c: 1, c: 1 } ] }",
        ] {
            assert_eq!(
                read_object(text),
                Err(Unreadable::DuplicateKey),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn nothing_that_is_not_one_object() {
        for text in [
            &b""[..],
            b"true",
            b"[{ a: 1 }]",
            b"{ a: 1 } trailing",
            b"{ a: 1, }",
            b"{ a: 'x' }",
            b"{ a: yes }",
            b"{ 1a: true }",
            b"{ a: 01 }",
            b"{ a: - }",
            b"{ a: \"k\\\" }",
            b"{ a: \"k\nk\" }",
            b"{ a: \"\xff\" }",
            b"<html>{ a: 1 }</html>",
        ] {
            assert_eq!(
                read_object(text),
                Err(Unreadable::NotAnObject),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn deep_or_random_input_never_panics() {
        let deep = "[".repeat(100_000);
        assert_eq!(parse_object(format!("{{a:{deep}}}").as_bytes()), None);
        for_mutations_of(SEED, |input| {
            let _ = parse_object(input);
        });
    }
}
