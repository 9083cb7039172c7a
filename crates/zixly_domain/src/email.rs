//! [`EmailAddress`]: the one check of an email address in Zixly (invitations, the team page, the
//! CLI's `user add`), and [`EmailAddress::normalise`], the one normalisation of an address typed
//! to look an account up (login, password reset).
//!
//! The rule is deliberately a shape check, not RFC 5322: an address is what a person types into
//! a form, and the proof that it works is the mail that reaches it. After trimming and lowercasing
//! it must
//! - be non-empty and at most [`EmailAddress::MAX_LEN`] (254) bytes of UTF-8 — the longest path
//!   SMTP carries (RFC 5321 §4.5.3.1.3, measured in octets, hence bytes and not characters);
//! - contain no whitespace (any Unicode white space, so a no-break space is refused too), no
//!   control character and none of `< > , ; "` (which would make it a list, a display name or a
//!   quoted local part in a mail header);
//! - have a non-empty part before its first `@` and, after it, a domain that contains a dot and
//!   neither starts nor ends with one.
//!
//! **Unicode** is accepted: internationalised addresses (RFC 6531, `josé@exämple.com`) are real
//! and were accepted before this type existed; lowercasing follows Unicode's rules
//! (`str::to_lowercase`), as account lookups always have. Refusing them would lock such people out
//! of invitations, and a mail relay that cannot deliver one makes the API fall back to showing
//! the link.
//!
//! Lowercasing the local part is not what RFC 5321 promises (it may be case-sensitive), but it is
//! what every account lookup does: `New@A.example` and `new@a.example` are one account.

use std::fmt;

/// A trimmed, lowercased email address of a valid shape (see the module docs). The field is
/// private: a value exists only through [`EmailAddress::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress(String);

/// Why a string is not an [`EmailAddress`]. The messages never repeat the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("the email address is empty")]
    Empty,
    #[error("the email address is longer than {} bytes", EmailAddress::MAX_LEN)]
    TooLong,
    #[error("the email address contains a space")]
    Whitespace,
    #[error("the email address contains a control character")]
    Control,
    #[error("the email address contains `{0}`")]
    Forbidden(char),
    #[error("the email address has no `@`")]
    MissingAt,
    #[error("the email address has nothing before the `@`")]
    EmptyLocal,
    #[error("the email address has nothing after the `@`")]
    EmptyDomain,
    #[error("the domain of the email address starts or ends with a dot")]
    DomainDotAtEdge,
    #[error("the domain of the email address has no dot (as in name@example.com)")]
    DomainWithoutDot,
}

/// Characters that would turn the address into something else in a mail header.
const FORBIDDEN: &str = "<>,;\"";

impl EmailAddress {
    /// The longest address accepted, in bytes.
    pub const MAX_LEN: usize = 254;

    /// Trims, lowercases and checks the shape.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let email = Self::normalise(raw);
        if email.is_empty() {
            return Err(EmailError::Empty);
        }
        if email.len() > Self::MAX_LEN {
            return Err(EmailError::TooLong);
        }
        if let Some(c) = email
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || FORBIDDEN.contains(*c))
        {
            return Err(if c.is_whitespace() {
                EmailError::Whitespace
            } else if c.is_control() {
                EmailError::Control
            } else {
                EmailError::Forbidden(c)
            });
        }
        let (local, domain) = email.split_once('@').ok_or(EmailError::MissingAt)?;
        if local.is_empty() {
            return Err(EmailError::EmptyLocal);
        }
        if domain.is_empty() {
            return Err(EmailError::EmptyDomain);
        }
        if domain.starts_with('.') || domain.ends_with('.') {
            return Err(EmailError::DomainDotAtEdge);
        }
        if !domain.contains('.') {
            return Err(EmailError::DomainWithoutDot);
        }
        Ok(EmailAddress(email))
    }

    /// The lookup form of a typed address (trimmed, lowercased) without the shape check: a login
    /// or a reset request for an address this type would refuse simply finds no account, and
    /// accounts created before the check existed (e.g. `admin@localhost` through the CLI) can
    /// still sign in.
    pub fn normalise(raw: &str) -> String {
        raw.trim().to_lowercase()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for EmailAddress {
    type Err = EmailError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for EmailAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> EmailError {
        EmailAddress::parse(s).expect_err(s)
    }

    #[test]
    fn valid_addresses_are_trimmed_and_lowercased() {
        assert_eq!(EmailAddress::parse("a@b.co").unwrap().as_str(), "a@b.co");
        assert_eq!(
            EmailAddress::parse("  New.Person+tag@A.Example.COM \n")
                .unwrap()
                .as_str(),
            "new.person+tag@a.example.com"
        );
        assert_eq!(
            "X@Y.Z".parse::<EmailAddress>().unwrap().to_string(),
            "x@y.z"
        );
    }

    #[test]
    fn spaces_anywhere_inside_are_refused() {
        assert_eq!(err("a b@c.co"), EmailError::Whitespace);
        assert_eq!(err("ab@c .co"), EmailError::Whitespace);
        assert_eq!(err("a\tb@c.co"), EmailError::Whitespace);
        // A no-break space and an em space are white space too.
        assert_eq!(err("a\u{a0}b@c.co"), EmailError::Whitespace);
        assert_eq!(err("a\u{2003}b@c.co"), EmailError::Whitespace);
        assert_eq!(
            err("a b@c.co").to_string(),
            "the email address contains a space"
        );
    }

    #[test]
    fn the_at_and_both_sides_are_required() {
        assert_eq!(err(""), EmailError::Empty);
        assert_eq!(err("   "), EmailError::Empty);
        assert_eq!(err("a"), EmailError::MissingAt);
        assert_eq!(err("a.example.com"), EmailError::MissingAt);
        assert_eq!(err("@b.co"), EmailError::EmptyLocal);
        assert_eq!(err("a@"), EmailError::EmptyDomain);
        assert_eq!(err("a@b"), EmailError::DomainWithoutDot);
        assert_eq!(err("a@localhost"), EmailError::DomainWithoutDot);
        assert_eq!(err("a@.co"), EmailError::DomainDotAtEdge);
        assert_eq!(err("a@b."), EmailError::DomainDotAtEdge);
    }

    #[test]
    fn header_syntax_and_control_characters_are_refused() {
        assert_eq!(err("a@b.co>"), EmailError::Forbidden('>'));
        assert_eq!(err("<a@b.co"), EmailError::Forbidden('<'));
        assert_eq!(err("a@b.co,c@d.co"), EmailError::Forbidden(','));
        assert_eq!(err("a@b.co;c@d.co"), EmailError::Forbidden(';'));
        assert_eq!(err("\"a\"@b.co"), EmailError::Forbidden('"'));
        assert_eq!(err("a\u{0}@b.co"), EmailError::Control);
        assert_eq!(err("a\u{7f}@b.co"), EmailError::Control);
        assert_eq!(err("a@b.co\u{85}x"), EmailError::Whitespace); // NEL is white space
    }

    #[test]
    fn length_is_limited_to_254_bytes() {
        let domain = "@example.com";
        let at_limit = format!(
            "{}{domain}",
            "a".repeat(EmailAddress::MAX_LEN - domain.len())
        );
        assert_eq!(at_limit.len(), 254);
        assert!(EmailAddress::parse(&at_limit).is_ok());
        let over = format!("a{at_limit}");
        assert_eq!(err(&over), EmailError::TooLong);
        // Surrounding white space does not count.
        assert!(EmailAddress::parse(&format!("  {at_limit}  ")).is_ok());
        // Bytes, not characters: 121 two-byte letters and the domain are 254 bytes.
        let wide = format!("{}{domain}", "é".repeat(121));
        assert_eq!(wide.len(), 254);
        assert!(EmailAddress::parse(&wide).is_ok());
        assert_eq!(err(&format!("é{wide}")), EmailError::TooLong);
    }

    #[test]
    fn unicode_addresses_are_accepted_and_lowercased_by_unicode_rules() {
        assert_eq!(
            EmailAddress::parse("José@Exämple.COM").unwrap().as_str(),
            "josé@exämple.com"
        );
        assert_eq!(EmailAddress::parse("ÀÉ@Δ.ΕΛ").unwrap().as_str(), "àé@δ.ελ");
        assert!(EmailAddress::parse("用户@例子.广告").is_ok());
    }

    /// The cases of the API's former `looks_like_email` (moved here with the check).
    #[test]
    fn email_shape() {
        assert!(EmailAddress::parse("a@b.co").is_ok());
        for bad in [
            "", "a", "a@b", "@b.co", "a@.co", "a b@c.co", "a@b.co>", "a@b.",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn normalise_only_trims_and_lowercases() {
        assert_eq!(
            EmailAddress::normalise("  Admin@LocalHost "),
            "admin@localhost"
        );
        assert_eq!(EmailAddress::normalise("not an email"), "not an email");
    }

    #[test]
    fn errors_do_not_repeat_the_input() {
        for bad in ["secret b@c.co", "secretvalue", "@secret.co", "secret@x"] {
            assert!(!err(bad).to_string().contains("secret"), "{bad}");
        }
    }
}
