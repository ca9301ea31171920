//! The gateway: OpenAI-compatible model calls with key auth, limits and exact
//! credits. A call passes these stages in order, one module each:
//!
//! 1. [`client_ip`] and [`limits::Limiters::admit_ip`]: the real client IP and
//!    its windows, before the body is parsed or any key work
//! 2. [`parse`]: the body is a valid chat request
//! 3. `keys::auth`: checksum, keyed-hash look-up, revoked, expired, owner disabled
//! 4. [`restrictions`]: the key's IP allowlist, referrer, scope `chat`, allowed models
//! 5. [`limits`]: the user's windows (minute with governor, in the stores of
//!    [`limit_state`]; hour and day in [`accounts`], written behind to the
//!    database), the key's usage cap, tokens per minute and parallel calls, and
//! 6. [`hold`]: the credit hold for the worst case, taken with them
//! 7. [`upstream`]: the provider call, whose answer [`reply`] relays to the
//!    caller (the public model name; usage only when asked for) and meters
//! 8. [`settle`]: the real cost charged, the rest refunded, usage recorded
//!
//! A call refused on the way is recorded by [`refusals`].
//!
//! `routes::gateway` runs the stages; [`error::GatewayError`] maps every refusal
//! to an OpenAI-shaped answer.

pub mod accounts;
pub mod client_ip;
pub mod error;
pub mod hold;
pub mod limit_state;
pub mod limits;
pub mod parse;
pub mod providers;
pub mod refusals;
pub mod reply;
pub mod restrictions;
pub mod settle;
pub mod upstream;

use std::{
    fmt,
    sync::{Arc, Mutex},
};

use foldhash::HashMap;
use tokio::sync::watch;

/// The gateway's shared parts: the model table, the upstream client, the
/// in-memory limiters and the live accounts.
pub struct Gateway {
    pub models: providers::ModelTable,
    pub upstreams: upstream::Upstreams,
    pub limiters: limits::Limiters,
    pub accounts: accounts::Accounts,
    /// Raised at the end of the shutdown grace period: calls still running
    /// stop and settle what they produced before the last write.
    stop: watch::Sender<bool>,
    /// The streams being relayed, by hold, for [`Gateway::settle_unread_streams`].
    streams: Mutex<HashMap<u64, Arc<settle::StreamBill>>>,
}

/// Waits for [`Gateway::stop_calls`].
pub struct StopSignal(pub watch::Receiver<bool>);

impl StopSignal {
    pub async fn raised(&mut self) {
        if self.0.wait_for(|stop| *stop).await.is_err() {
            // The gateway is gone, and with it any reason to stop.
            std::future::pending::<()>().await;
        }
    }
}

impl Gateway {
    pub fn new(
        config: &crate::config::Config,
        models: providers::ModelTable,
        store: crate::store::Store,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            accounts: accounts::Accounts::new(store),
            models,
            upstreams: upstream::Upstreams::new(
                config.upstream_timeouts,
                config.upstream_max_body_bytes,
            )?,
            limiters: limits::Limiters::new(
                config.ip_requests_per_minute,
                config.ip_requests_per_day,
            ),
            stop: watch::Sender::new(false),
            streams: Mutex::default(),
        })
    }

    /// What a running call watches to know it must stop.
    pub fn stop_signal(&self) -> StopSignal {
        StopSignal(self.stop.subscribe())
    }

    /// Stops the calls still running: each settles what it produced so far
    /// (a stream's output, the prompt once the upstream answered) and
    /// answers 503 or, mid-stream, an error event.
    pub fn stop_calls(&self) {
        self.stop.send_replace(true);
    }

    fn streams(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<settle::StreamBill>>> {
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A stream began relaying under `hold`.
    pub fn stream_started(&self, hold: u64, bill: Arc<settle::StreamBill>) {
        self.streams().insert(hold, bill);
    }

    /// The stream under `hold` has ended, settled.
    pub fn stream_ended(&self, hold: u64) {
        self.streams().remove(&hold);
    }

    /// Settles, for what they sent, the streams still open once their calls
    /// were stopped: those whose clients stopped reading are not polled and
    /// never saw the stop. Returns how many there were.
    pub fn settle_unread_streams(&self) -> usize {
        let streams = std::mem::take(&mut *self.streams());
        streams
            .values()
            .filter(|stream| stream.settle_stopped())
            .count()
    }
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
        f.debug_struct("Gateway")
            .field("models", &names)
            .finish_non_exhaustive()
    }
}
