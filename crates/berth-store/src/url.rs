//! [`StoreUrl`]: the store's URL as the user gave it, which prints with every password masked,
//! so that no error or log line that names the store can leak one.

use std::fmt;

/// What a masked secret prints as.
const MASK: &str = "***";

/// A store URL (`sqlite:///path`, `postgres://user:pw@host/db?password=...`, or whatever the
/// user typed). `Display` and `Debug` mask every password it may carry: the one in the
/// authority, a `password=` query parameter (which the PostgreSQL driver honours) and a
/// `password=` word of a key=value DSN. Only [`StoreUrl::expose`] gives the text itself, for the
/// driver.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreUrl(String);

impl StoreUrl {
    pub fn new(url: impl Into<String>) -> StoreUrl {
        StoreUrl(url.into())
    }

    /// The URL with its secrets, for the database driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with every password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }
}

impl From<&str> for StoreUrl {
    fn from(url: &str) -> StoreUrl {
        StoreUrl::new(url)
    }
}

impl From<String> for StoreUrl {
    fn from(url: String) -> StoreUrl {
        StoreUrl(url)
    }
}

impl std::str::FromStr for StoreUrl {
    type Err = std::convert::Infallible;

    fn from_str(url: &str) -> Result<StoreUrl, Self::Err> {
        Ok(StoreUrl::new(url))
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.redacted())
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_tuple("StoreUrl")
            .field(&self.redacted())
            .finish()
    }
}

/// Whether a parameter's name says it holds a secret (`password`, `sslpassword`, ...).
fn is_secret_key(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    key.contains("password") || key.contains("passwd")
}

fn redact(url: &str) -> String {
    match url.find("://") {
        Some(at) => redact_url(url, at + 3),
        None if url.contains('=') => redact_key_values(url),
        None => url.to_string(),
    }
}

/// `scheme://user:password@host/path?query#fragment`: the password of the authority and every
/// secret query parameter.
fn redact_url(url: &str, authority_start: usize) -> String {
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |at| authority_start + at);
    let authority = &url[authority_start..authority_end];
    let mut redacted = url[..authority_start].to_string();
    match authority.rfind('@') {
        Some(at) => {
            match authority[..at].split_once(':') {
                Some((user, _password)) => {
                    redacted.push_str(user);
                    redacted.push(':');
                    redacted.push_str(MASK);
                }
                None => redacted.push_str(&authority[..at]),
            }
            redacted.push_str(&authority[at..]);
        }
        None => redacted.push_str(authority),
    }
    let rest = &url[authority_end..];
    let Some(query_start) = rest.find('?') else {
        redacted.push_str(rest);
        return redacted;
    };
    redacted.push_str(&rest[..=query_start]);
    let query = &rest[query_start + 1..];
    let (query, fragment) = match query.find('#') {
        Some(at) => query.split_at(at),
        None => (query, ""),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _value)) if is_secret_key(&percent_decoded(key)) => {
                format!("{key}={MASK}")
            }
            _ => pair.to_string(),
        })
        .collect();
    redacted.push_str(&pairs.join("&"));
    redacted.push_str(fragment);
    redacted
}

/// A libpq key=value DSN (`host=db password='it''s' dbname=berth`): the value of every secret
/// key, quoted or not.
fn redact_key_values(dsn: &str) -> String {
    let mut redacted = String::with_capacity(dsn.len());
    let mut rest = dsn;
    while let Some(equals) = rest.find('=') {
        let key = &rest[..equals];
        // The key is the last word before `=`.
        let key_word = key
            .trim_end()
            .rsplit(char::is_whitespace)
            .next()
            .unwrap_or_default();
        redacted.push_str(key);
        redacted.push('=');
        let after = &rest[equals + 1..];
        let spaces = after.len() - after.trim_start().len();
        let value_start = &after[spaces..];
        let value_len = value_length(value_start);
        redacted.push_str(&after[..spaces]);
        if is_secret_key(key_word) {
            redacted.push_str(MASK);
        } else {
            redacted.push_str(&value_start[..value_len]);
        }
        rest = &value_start[value_len..];
    }
    redacted.push_str(rest);
    redacted
}

/// The length of a DSN value at the start of `text`: up to the closing quote of a quoted value
/// (backslash escapes), else up to the next whitespace.
fn value_length(text: &str) -> usize {
    if let Some(quoted) = text.strip_prefix('\'') {
        let mut escaped = false;
        for (at, character) in quoted.char_indices() {
            match character {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '\'' => return at + 2,
                _ => {}
            }
        }
        return text.len();
    }
    text.find(char::is_whitespace).unwrap_or(text.len())
}

/// `%70assword` is `password` too.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let hex = |offset: usize| {
            bytes
                .get(at + offset)
                .and_then(|byte| (*byte as char).to_digit(16))
        };
        match (bytes[at], hex(1), hex(2)) {
            (b'%', Some(high), Some(low)) => {
                decoded.push((high * 16 + low) as u8);
                at += 3;
            }
            (byte, _, _) => {
                decoded.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::StoreUrl;

    #[test]
    fn store_url_masks_every_password() {
        let cases = [
            (
                "postgres://berth:s3cret@db:5432/berth",
                "postgres://berth:***@db:5432/berth",
            ),
            ("postgres://berth@db/berth", "postgres://berth@db/berth"),
            (
                "postgres://u:p@ss@db/x?sslmode=disable",
                "postgres://u:***@db/x?sslmode=disable",
            ),
            (
                "postgres://db/berth?password=s3cret",
                "postgres://db/berth?password=***",
            ),
            (
                "postgresql://u@db/berth?sslmode=require&password=s3cret&application_name=b",
                "postgresql://u@db/berth?sslmode=require&password=***&application_name=b",
            ),
            (
                "postgres://db?%70assword=s3cret#frag",
                "postgres://db?%70assword=***#frag",
            ),
            (
                "postgres://u:s3cret@db?sslpassword=s3cret",
                "postgres://u:***@db?sslpassword=***",
            ),
            (
                "host=db password=s3cret dbname=berth",
                "host=db password=*** dbname=berth",
            ),
            (
                "host=db password = 'with \\' quote and space' user=u",
                "host=db password = *** user=u",
            ),
            ("password=s3cret", "password=***"),
            ("sqlite:///var/lib/berth.db", "sqlite:///var/lib/berth.db"),
            ("sqlite::memory:", "sqlite::memory:"),
        ];
        for (url, expected) in cases {
            let url = StoreUrl::new(url);
            assert_eq!(url.to_string(), expected, "{}", url.expose());
            assert_eq!(format!("{url:?}"), format!("StoreUrl({expected:?})"));
            assert!(!format!("{url} {url:?}").contains("s3cret"));
        }
    }
}
