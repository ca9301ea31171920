//! The API key format: `tg_<env>_<secret><checksum>`.
//!
//! `<env>` is the environment tag (`live`, `test`, `staging`, `dev`), `<secret>`
//! is 32 bytes from the OS generator in base62, left-padded to 44 characters, and
//! `<checksum>` is the CRC32 of everything before it, as 6 base62 characters. A
//! mistyped key fails the checksum and is refused without touching the database,
//! and secret scanners can match `tg_(live|test|staging|dev)_[0-9A-Za-z]{50}`.

use std::fmt;

pub(crate) const ALPHABET: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SECRET_BYTES: usize = 32;
const CHECKSUM_CHARS: usize = 6;
/// 32 bytes need at most 44 base62 characters; shorter encodings are padded.
const SECRET_CHARS: usize = 44;

/// Which environment a key belongs to; part of its visible prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyEnv {
    Live,
    Test,
    Staging,
    Dev,
}

impl KeyEnv {
    pub const ALL: [KeyEnv; 4] = [KeyEnv::Live, KeyEnv::Test, KeyEnv::Staging, KeyEnv::Dev];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyEnv::Live => "live",
            KeyEnv::Test => "test",
            KeyEnv::Staging => "staging",
            KeyEnv::Dev => "dev",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|env| env.as_str() == value)
    }

    fn prefix(self) -> String {
        format!("tg_{}_", self.as_str())
    }
}

/// A full API key. Its `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    full: String,
    env: KeyEnv,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}…{})", self.display_prefix(), self.last_four())
    }
}

/// Why a presented key was refused before any look-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormatError {
    /// Not `tg_<env>_…`, or characters outside base62.
    Malformed,
    /// The shape is right but the checksum does not match: a typo or a truncation.
    BadChecksum,
}

fn checksum(text: &str) -> String {
    let encoded = base_x::encode(ALPHABET, &crc32fast::hash(text.as_bytes()).to_be_bytes());
    format!("{encoded:0>width$}", width = CHECKSUM_CHARS)
}

impl ApiKey {
    /// A new random key.
    pub fn generate(env: KeyEnv) -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes)?;
        let secret = base_x::encode(ALPHABET, &bytes);
        let body = format!("{}{secret:0>width$}", env.prefix(), width = SECRET_CHARS);
        let full = format!("{body}{}", checksum(&body));
        Ok(Self { full, env })
    }

    /// Checks the shape and checksum of a presented key.
    pub fn parse(presented: &str) -> Result<Self, KeyFormatError> {
        let env = KeyEnv::ALL
            .into_iter()
            .find(|env| presented.starts_with(&env.prefix()))
            .ok_or(KeyFormatError::Malformed)?;
        let rest = &presented[env.prefix().len()..];
        if rest.len() != SECRET_CHARS + CHECKSUM_CHARS
            || !rest.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(KeyFormatError::Malformed);
        }
        let (body, sum) = presented.split_at(presented.len() - CHECKSUM_CHARS);
        if checksum(body) != sum {
            return Err(KeyFormatError::BadChecksum);
        }
        Ok(Self {
            full: presented.to_owned(),
            env,
        })
    }

    pub fn env(&self) -> KeyEnv {
        self.env
    }

    /// The whole key: shown once to its owner, then only ever hashed.
    pub fn expose(&self) -> &str {
        &self.full
    }

    /// What pages show to tell keys apart: the prefix and four characters.
    pub fn display_prefix(&self) -> String {
        let prefix_len = self.env.prefix().len();
        self.full[..prefix_len + 4].to_owned()
    }

    pub fn last_four(&self) -> String {
        self.full[self.full.len() - 4..].to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_carry_their_environment() {
        for env in KeyEnv::ALL {
            let key = ApiKey::generate(env).unwrap();
            assert!(key.expose().starts_with(&format!("tg_{}_", env.as_str())));
            let parsed = ApiKey::parse(key.expose()).unwrap();
            assert_eq!(parsed, key);
            assert_eq!(parsed.env(), env);
        }
    }

    #[test]
    fn keys_are_random_and_of_one_length() {
        let a = ApiKey::generate(KeyEnv::Live).unwrap();
        let b = ApiKey::generate(KeyEnv::Live).unwrap();
        assert_ne!(a, b);
        // Many draws cover the short base62 encodings (a small leading value).
        for _ in 0..2000 {
            let key = ApiKey::generate(KeyEnv::Live).unwrap();
            assert_eq!(
                key.expose().len(),
                "tg_live_".len() + 44 + 6,
                "{}",
                key.expose()
            );
            assert!(ApiKey::parse(key.expose()).is_ok());
        }
    }

    #[test]
    fn a_single_typo_fails_the_checksum() {
        let key = ApiKey::generate(KeyEnv::Test).unwrap();
        let full = key.expose();
        let i = full.len() / 2;
        let swapped = if &full[i..=i] == "a" { "b" } else { "a" };
        let typo = format!("{}{}{}", &full[..i], swapped, &full[i + 1..]);
        assert_eq!(ApiKey::parse(&typo), Err(KeyFormatError::BadChecksum));
        // A truncated key is refused on its length alone.
        assert_eq!(
            ApiKey::parse(&full[..full.len() - 1]),
            Err(KeyFormatError::Malformed)
        );
    }

    #[test]
    fn malformed_keys_are_refused() {
        for bad in [
            "",
            "sk-abc",
            "tg_prod_abcdef",
            "tg_live_short",
            "tg_live_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        ] {
            assert_eq!(ApiKey::parse(bad), Err(KeyFormatError::Malformed), "{bad}");
        }
    }

    #[test]
    fn debug_and_display_parts_hide_the_secret() {
        let key = ApiKey::generate(KeyEnv::Live).unwrap();
        let debug = format!("{key:?}");
        assert!(!debug.contains(&key.expose()[12..40]));
        assert_eq!(key.display_prefix().len(), "tg_live_".len() + 4);
        assert_eq!(key.last_four().len(), 4);
    }
}
