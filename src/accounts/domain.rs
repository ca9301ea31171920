//! Account input, parsed once: an `Email`, `DisplayName` or `Password` value is
//! valid by construction, so the service layer never re-checks it.

use std::{collections::HashSet, sync::LazyLock};

/// Why an input was refused, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidInput {
    pub field: &'static str,
    pub message: String,
}

impl InvalidInput {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Whether a name shown to others holds characters that cannot be shown or
/// that hide text: controls, and Unicode's default-ignorable characters
/// (bidirectional controls, zero-width spaces, blank fillers), with which a
/// name or key label could pass for another's on the admin pages and in the
/// audit log. Kept where writing needs them: the zero-width joiners beside
/// letters other than ASCII (emoji sequences, Persian, Indic scripts), a
/// variation selector after anything but an ASCII letter (emoji, keycaps),
/// and tags in a flag after the black flag.
pub fn hides_text(name: &str) -> bool {
    use icu_properties::{CodePointSetData, props::DefaultIgnorableCodePoint};
    let ignorable = CodePointSetData::new::<DefaultIgnorableCodePoint>();
    let chars: Vec<char> = name.chars().collect();
    chars.iter().enumerate().any(|(i, &c)| {
        let before = i.checked_sub(1).map(|j| chars[j]);
        let after = chars.get(i + 1).copied();
        let beside_other_text = |c: Option<char>| c.is_some_and(|c| !c.is_ascii());
        let needed = match c {
            '\u{200C}' | '\u{200D}' => beside_other_text(before) && beside_other_text(after),
            '\u{FE00}'..='\u{FE0F}' => before.is_some_and(|b| !b.is_ascii_alphabetic()),
            '\u{E0020}'..='\u{E007F}' => {
                before.is_some_and(|b| b == '\u{1F3F4}' || ('\u{E0020}'..='\u{E007F}').contains(&b))
            }
            _ => false,
        };
        c.is_control() || (ignorable.contains(c) && !needed)
    })
}

/// The longest email address, in bytes (RFC 5321's path limit less its brackets).
pub const EMAIL_MAX_BYTES: usize = 254;

/// A trimmed, lowercased email address of plausible shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let email = raw.trim().to_lowercase();
        let invalid =
            || InvalidInput::new("email", "Enter an email address like name@example.com.");
        if email.is_empty() {
            return Err(InvalidInput::new("email", "Enter your email address."));
        }
        if email.len() > EMAIL_MAX_BYTES
            || email.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid());
        }
        let (local, domain) = email.rsplit_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !domain.contains('@');
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(invalid());
        }
        // Reserved (RFC 2606): no mail reaches it, and deleted accounts'
        // addresses are rewritten into it, which a sign-up must not take.
        if domain.ends_with(".invalid") {
            return Err(InvalidInput::new(
                "email",
                "Addresses under .invalid cannot receive mail. Enter your real address.",
            ));
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display name: trimmed, 1 to 80 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(InvalidInput::new("display_name", "Enter a display name."));
        }
        if name.chars().count() > 80 {
            return Err(InvalidInput::new(
                "display_name",
                "Use at most 80 characters.",
            ));
        }
        if hides_text(name) {
            return Err(InvalidInput::new(
                "display_name",
                "The name contains characters that cannot be shown.",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The 30,000 most common passwords, ranked (from the zxcvbn project's list, MIT).
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("common_passwords.txt").lines().collect());

use super::types::{PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS};

/// A new password: `PASSWORD_MIN_CHARS` to `PASSWORD_MAX_CHARS` characters,
/// not on the common-password list.
/// No composition rules; length and rarity are what make a password strong.
pub struct Password(String);

impl Password {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, InvalidInput> {
        let chars = raw.chars().count();
        if chars < PASSWORD_MIN_CHARS {
            return Err(InvalidInput::new(
                field,
                format!("Use at least {PASSWORD_MIN_CHARS} characters."),
            ));
        }
        if chars > PASSWORD_MAX_CHARS {
            return Err(InvalidInput::new(
                field,
                format!("Use at most {PASSWORD_MAX_CHARS} characters."),
            ));
        }
        if COMMON_PASSWORDS.contains(raw.to_lowercase().as_str()) {
            return Err(InvalidInput::new(
                field,
                "This password is on a list of commonly used passwords that attackers try first. Choose another.",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
    }

    #[test]
    fn malformed_emails_are_refused() {
        for raw in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@.com",
            "ada@example..com",
            "deleted-2@deleted.invalid",
            "ada@mail.INVALID",
        ] {
            assert!(Email::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn names_may_not_hide_or_reorder_text() {
        for name in [
            "admin\u{202E}nimda",
            "ad\u{200B}min",
            "ad\u{200C}min",
            "ad\u{200D}min",
            "\u{200D}x",
            "ad\u{FE0F}min",
            "a\u{3164}b",
            "\u{2066}x\u{2069}",
            "x\u{E0041}",
            "a\u{7}",
        ] {
            assert!(DisplayName::parse(name).is_err(), "{name:?}");
        }
        // What writing needs stays: a family emoji, Persian's half-space, a
        // heart and a keycap with their selectors, Scotland's flag.
        for name in [
            "👨\u{200D}👩\u{200D}👧",
            "می\u{200C}خواهم",
            "❤\u{FE0F} Ana",
            "1\u{FE0F}\u{20E3}",
            "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
        ] {
            assert!(DisplayName::parse(name).is_ok(), "{name:?}");
        }
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  Ada  ").unwrap().as_str(), "Ada");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"x".repeat(81)).is_err());
        assert!(DisplayName::parse("a\u{0007}b").is_err());
    }

    #[test]
    fn passwords_are_8_to_128_characters() {
        assert!(Password::parse("password", "short").is_err());
        assert!(Password::parse("password", "correct horse battery").is_ok());
        // Characters, not bytes: eight multi-byte characters are enough.
        assert!(Password::parse("password", "ééééééé€").is_ok());
        assert!(Password::parse("password", &"k".repeat(129)).is_err());
    }

    #[test]
    fn common_passwords_are_refused_whatever_the_case() {
        assert_eq!(COMMON_PASSWORDS.len(), 30_000);
        for raw in [
            "password",
            "Password1",
            "12345678",
            "iloveyou",
            "QWERTYUIOP",
        ] {
            let err = Password::parse("password", raw).unwrap_err();
            assert!(err.message.contains("commonly used"), "{raw}");
        }
    }

    #[test]
    fn debug_output_never_shows_a_password() {
        let p = Password::parse("password", "a very private phrase").unwrap();
        assert!(!format!("{p:?}").contains("private"));
    }
}
