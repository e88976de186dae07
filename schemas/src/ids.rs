//! Validated identifiers. Each type can only hold a value that obeys its rule,
//! so code past the ingest edge never re-checks them.

use std::fmt;

/// Checks the shared identifier rule: 1 to `max` characters of
/// `[A-Za-z0-9._:-]`. Returns a message fit for the sender on failure.
pub fn check_token(value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > max {
        return Err(format!(
            "is {} characters long, at most {max} allowed",
            value.len()
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(format!(
            "contains {c:?}; only A-Z a-z 0-9 . _ : - are allowed"
        ));
    }
    Ok(())
}

macro_rules! token_type {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The longest value accepted.
            pub const MAX_LEN: usize = $max;

            /// Fails when the value breaks the identifier rule, with the reason.
            pub fn parse(value: &str) -> Result<Self, String> {
                check_token(value, Self::MAX_LEN).map(|()| Self(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

token_type!(
    /// The sender's idempotency key: a retry carries the same id.
    EventId,
    64
);
token_type!(
    /// A scanner as the venue file names it.
    ScannerId,
    64
);
token_type!(
    /// A ticket as the ticketing system names it.
    TicketId,
    64
);

/// A raw badge id as printed on the badge. It is personal data: it lives only
/// between parsing and pseudonymisation, and is never logged or stored.
#[derive(Clone, PartialEq, Eq)]
pub struct BadgeId(String);

impl BadgeId {
    pub const MAX_LEN: usize = 128;

    /// Fails for an empty value, one longer than 128 bytes, or one with
    /// control characters.
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.is_empty() {
            return Err("must not be empty".into());
        }
        if value.len() > Self::MAX_LEN {
            return Err(format!(
                "is {} bytes long, at most {} allowed",
                value.len(),
                Self::MAX_LEN
            ));
        }
        if value.chars().any(char::is_control) {
            return Err("contains a control character".into());
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Redacted: a badge id must never reach a log line by accident.
impl fmt::Debug for BadgeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BadgeId(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rule() {
        assert!(EventId::parse("g1-000123").is_ok());
        assert!(EventId::parse("a.b_c:d-E9").is_ok());
        assert!(EventId::parse("").is_err());
        assert!(EventId::parse(&"x".repeat(65)).is_err());
        assert!(EventId::parse(&"x".repeat(64)).is_ok());
        assert!(EventId::parse("a b").is_err());
        assert!(EventId::parse("é").is_err());
    }

    #[test]
    fn badge_is_redacted_in_debug() {
        let b = BadgeId::parse("V-004213").unwrap();
        assert!(!format!("{b:?}").contains("004213"));
        assert!(BadgeId::parse("a\nb").is_err());
    }
}
