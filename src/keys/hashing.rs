//! API keys are stored only as HMAC-SHA-256 under a server secret.
//!
//! The secret comes from `TOLLGATE_KEY_SECRET`; when unset it is generated once
//! into `key_secret` beside the database, readable by the owner only. A stolen
//! database alone therefore cannot be used to check guessed keys.

use std::{
    fmt,
    io::Write,
    path::{Path, PathBuf},
};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::format::ApiKey;

const GENERATED_SECRET_BYTES: usize = 64;

/// The shortest key secret taken, in bytes: configured (checked with the
/// other settings, `config`) or read from its file.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Clone)]
pub struct KeyHasher {
    secret: Vec<u8>,
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHasher(secret redacted)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeySecretError {
    #[error("invalid TOLLGATE_KEY_SECRET: expected at least 32 bytes")]
    TooShort,
    #[error("cannot read or create the key secret file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the key secret file {0} is empty or damaged; restore it or set TOLLGATE_KEY_SECRET")]
    Damaged(PathBuf),
    #[error(
        "the key secret file {} is missing, but the database holds API keys hashed under it: \
         restore the file (it is kept beside the database), or set TOLLGATE_KEY_SECRET to the \
         secret. If the secret is lost, run `tollgate replace-key-secret`: it makes a new one \
         and revokes every existing key, whose owners must make new ones",
        .0.display()
    )]
    Missing(PathBuf),
    #[error(
        "the key secret ({0}) is not the one this database's API keys were made under: every \
         key would be refused. Put the earlier secret back (TOLLGATE_KEY_SECRET, or the \
         key_secret file beside the database). To replace it on purpose, run `tollgate \
         replace-key-secret` with the new secret in place: it revokes every existing key, \
         whose owners must make new ones"
    )]
    Changed(&'static str),
    #[error(
        "the key secret in place is the one the keys were made under: nothing to replace. Set \
         TOLLGATE_KEY_SECRET to the new secret (32 or more bytes), or remove the key_secret \
         file beside the database for a generated one, then run this again"
    )]
    Unchanged,
    #[error(
        "this database does not record the secret its keys were made under (it predates the \
         record), so whether the secret in place is new cannot be told. Start the server once \
         with the secret the keys were made under, which records it; if that secret is lost, \
         unset TOLLGATE_KEY_SECRET and remove the key_secret file, and run this again for a \
         new generated one"
    )]
    NotRecorded,
    #[error("no database at {0} (DATABASE_URL): nothing to replace the key secret of")]
    NoDatabase(String),
    #[error("the OS random generator failed: {0}")]
    Random(String),
}

impl KeyHasher {
    /// Uses `configured` when given, else the secret file in `data_dir`
    /// (created with mode 0600 on first start). When the database already
    /// holds keys (`keys_stored`), a missing file is not made again: every
    /// key would silently stop working (a database moved or restored
    /// without it).
    pub fn load(
        configured: Option<&str>,
        data_dir: &Path,
        keys_stored: bool,
    ) -> Result<Self, KeySecretError> {
        if let Some(secret) = configured {
            return if secret.len() >= MIN_SECRET_BYTES {
                Ok(Self {
                    secret: secret.as_bytes().to_vec(),
                })
            } else {
                Err(KeySecretError::TooShort)
            };
        }
        let path = data_dir.join("key_secret");
        let file_error = |source| KeySecretError::File {
            path: path.clone(),
            source,
        };
        match std::fs::read(&path) {
            Ok(secret) if secret.len() >= MIN_SECRET_BYTES => Ok(Self { secret }),
            Ok(_) => Err(KeySecretError::Damaged(path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && keys_stored => {
                Err(KeySecretError::Missing(path))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut secret = vec![0u8; GENERATED_SECRET_BYTES];
                getrandom::fill(&mut secret).map_err(|e| KeySecretError::Random(e.to_string()))?;
                crate::store::create_private_dir(data_dir).map_err(file_error)?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(&path).map_err(file_error)?;
                file.write_all(&secret).map_err(file_error)?;
                file.sync_all().map_err(file_error)?;
                Ok(Self { secret })
            }
            Err(e) => Err(file_error(e)),
        }
    }

    /// A keyed hash of a fixed label, stored in the database: a later start
    /// under another secret tells by it that the keys would all be refused.
    pub fn check_value(&self) -> Vec<u8> {
        self.hash_secret("key-secret\0check")
    }

    /// The stored form of a key.
    pub fn hash(&self, key: &ApiKey) -> Vec<u8> {
        self.hash_secret(key.expose())
    }

    /// The stored form of a password reset link's token. A label of its own
    /// goes first, so no token's hash can stand for a key's.
    pub fn hash_reset_token(&self, token: &str) -> Vec<u8> {
        self.hash_secret(&format!("password-reset\0{token}"))
    }

    /// The key device cookies are signed with (`accounts::device`), taken
    /// from the secret under labels of its own. The cookie library wants 64
    /// bytes; it signs with the first half.
    pub fn device_cookie_key(&self) -> tower_cookies::Key {
        let mut key = self.hash_secret("device-cookie\0signing");
        key.extend(self.hash_secret("device-cookie\0encryption"));
        tower_cookies::Key::from(&key)
    }

    fn hash_secret(&self, secret: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .expect("HMAC accepts any key length");
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::format::KeyEnv;

    #[test]
    fn the_generated_secret_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = KeyHasher::load(None, dir.path(), false).unwrap();
        let second = KeyHasher::load(None, dir.path(), true).unwrap();
        let key = ApiKey::generate(KeyEnv::Live).unwrap();
        assert_eq!(
            first.hash(&key),
            second.hash(&key),
            "the same secret is reused"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("key_secret"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    /// Keys in the database and no secret file: a new secret would make
    /// every key fail, so start-up stops and says what to do.
    #[test]
    fn a_missing_secret_is_not_made_again_for_stored_keys() {
        let dir = tempfile::tempdir().unwrap();
        let missing = KeyHasher::load(None, dir.path(), true).unwrap_err();
        assert!(matches!(&missing, KeySecretError::Missing(path) if path.ends_with("key_secret")));
        assert!(
            missing.to_string().contains("restore the file"),
            "{missing}"
        );
        assert!(!dir.path().join("key_secret").exists());
        // A secret set in the environment is the operator's choice.
        assert!(
            KeyHasher::load(
                Some("a-configured-secret-of-enough-length-1"),
                dir.path(),
                true
            )
            .is_ok()
        );
    }

    #[test]
    fn hashes_depend_on_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let a = KeyHasher::load(
            Some("a-configured-secret-of-enough-length-1"),
            dir.path(),
            true,
        )
        .unwrap();
        let b = KeyHasher::load(
            Some("a-configured-secret-of-enough-length-2"),
            dir.path(),
            true,
        )
        .unwrap();
        let key = ApiKey::generate(KeyEnv::Live).unwrap();
        assert_ne!(a.hash(&key), b.hash(&key));
        assert_eq!(a.hash(&key).len(), 32);
        assert!(matches!(
            KeyHasher::load(Some("short"), dir.path(), false),
            Err(KeySecretError::TooShort)
        ));
    }
}
