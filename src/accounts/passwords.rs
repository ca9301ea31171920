//! Password hashing with argon2id (m = 19 MiB, t = 2, p = 1), always on the
//! blocking pool so a hash never stalls the async runtime.

use std::sync::{Arc, LazyLock};

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng},
};

use super::domain::Password;

fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A hash of a password nobody has, verified against when the email is unknown,
/// so an unknown email costs as much time as a wrong password.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    hash_blocking("tollgate-timing-equaliser-not-a-password").expect("hashing a constant succeeds")
});

fn hash_blocking(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(hasher()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

fn verify_blocking(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            hasher()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Turns at hashing: each hash holds 19 MiB, and the blocking pool would run
/// up to 512 at once (a flood of sign-ups or logins, about 9.5 GiB). Two a
/// core keep every core busy; the rest wait.
static TURNS: LazyLock<Arc<tokio::sync::Semaphore>> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    Arc::new(tokio::sync::Semaphore::new(2 * cores))
});

/// Runs `work` on the blocking pool in its turn. The turn goes with the work,
/// not the caller: a client that hangs up does not free it while the hash
/// still runs.
async fn in_turn<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    in_turn_of(&TURNS, work).await
}

async fn in_turn_of<T: Send + 'static>(
    turns: &Arc<tokio::sync::Semaphore>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    // The semaphore is never closed.
    let turn = turns
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| e.to_string())?;
    tokio::task::spawn_blocking(move || {
        let done = work();
        drop(turn);
        done
    })
    .await
    .map_err(|e| e.to_string())
}

pub async fn hash(password: &Password) -> Result<String, String> {
    let password = password.expose().to_owned();
    in_turn(move || hash_blocking(&password).map_err(|e| e.to_string())).await?
}

/// Verifies `password` against `phc`, or against the dummy hash when there is no
/// stored hash, so both paths take the same time.
pub async fn verify(password: &str, phc: Option<String>) -> bool {
    let password = password.to_owned();
    in_turn(move || match phc {
        Some(phc) => verify_blocking(&password, &phc),
        None => {
            verify_blocking(&password, &DUMMY_HASH);
            false
        }
    })
    .await
    .unwrap_or(false)
}

/// Computes the dummy hash ahead of the first login attempt.
pub fn warm_up() {
    LazyLock::force(&DUMMY_HASH);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_the_agreed_parameters() {
        let password = Password::parse("password", "a long and unusual phrase").unwrap();
        let phc = hash(&password).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("a long and unusual phrase", Some(phc.clone())).await);
        assert!(!verify("a long and unusual phrasE", Some(phc)).await);
        assert!(!verify("anything", None).await);
        assert!(!verify("anything", Some("not a phc string".into())).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashes_take_turns_and_a_turn_stays_with_its_hash() {
        use std::{
            sync::atomic::{AtomicUsize, Ordering},
            time::Duration,
        };
        let turns = Arc::new(tokio::sync::Semaphore::new(2));
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let works = (0..6).map(|_| {
            let (running, most) = (running.clone(), most.clone());
            in_turn_of(&turns, move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(30));
                running.fetch_sub(1, Ordering::SeqCst);
            })
        });
        for done in futures::future::join_all(works).await {
            done.unwrap();
        }
        // Never more than the turns (fewer when the blocking pool is slow to
        // start the second).
        let most = most.load(Ordering::SeqCst);
        assert!((1..=2).contains(&most), "two at a time, not {most}");

        // A caller that gives up (a client hanging up) leaves the turn with
        // the hash still running, until it ends.
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let gave_up = tokio::time::timeout(
            Duration::from_millis(20),
            in_turn_of(&turns, move || wait.recv()),
        )
        .await;
        assert!(gave_up.is_err());
        assert_eq!(turns.available_permits(), 1);
        release.send(()).unwrap();
        let mut waited = Duration::ZERO;
        while turns.available_permits() < 2 && waited < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            waited += Duration::from_millis(5);
        }
        assert_eq!(turns.available_permits(), 2);
    }
}
