//! Stage 8: after the call, charge what it really cost (the upstream's usage, or
//! counted when it sent none), release the rest of the hold and record the
//! usage, together (in memory at once, in one database batch soon after). A
//! stream that the client abandons is settled for what was produced so far,
//! when its body is dropped; a call dropped before that (the client gone
//! while the upstream had not answered yet, or had sent a JSON answer's
//! status but not its body) is settled when its [`Bill`] is, so no hold is
//! ever left taken.

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Instant,
};

use super::{Gateway, accounts::Settlement, limits::TakenUse};
use crate::{credits::Prices, store::CappedUseEnd};

/// What is needed to settle one admitted call. Dropped unsettled, it settles
/// as a call the client left (`499`): free, or the prompt once the upstream
/// had answered.
pub struct Bill {
    pub gateway: Arc<Gateway>,
    /// The hold admission took.
    pub hold: u64,
    pub user_id: i64,
    pub key_id: i64,
    pub request_id: Option<String>,
    pub model: String,
    pub prices: Prices,
    pub stream: bool,
    pub reserved_micros: i64,
    pub prompt_estimate: u64,
    /// The most prompt tokens charged whatever the upstream reports
    /// ([`super::hold::Hold::prompt_most`]).
    pub most_prompt: u64,
    /// The most completion tokens counted when the upstream sends no usage:
    /// every choice's cap, as the hold has it.
    pub most_completion: u64,
    pub started: Instant,
    /// How long the upstream took: to its whole answer (JSON), to its
    /// first chunk (streams). Empty when no answer came.
    pub upstream_ms: Option<i64>,
    /// The upstream accepted the call (its success status came): from then on
    /// it has read the prompt, which is charged however the call ends.
    pub answered: bool,
    pub client_ip: Option<String>,
    /// A capped key's use, counted only if the upstream answered.
    pub capped_use: Option<TakenUse>,
    pub instruments: crate::instruments::Instruments,
    /// Set by the one settlement; `false` when made.
    pub settled: bool,
}

/// What the call produced, as `gateway::reply` read it.
#[derive(Debug, Default, Clone)]
pub struct Meter {
    /// The upstream's own `(prompt, completion)` counts, when it sent them.
    pub usage: Option<(u64, u64)>,
    /// Whether an answer carried a `usage` with whole-number counts (it is
    /// passed on, with the counts charged where they differ; any other is
    /// replaced by the gateway's count).
    pub usage_sent: bool,
    /// Bytes of reply text seen (content, reasoning, refusals, tool calls),
    /// for counting when there is no usage.
    pub reply_bytes: u64,
    /// Of those, the bytes that came after the last usage: an upstream that
    /// reports usage early (or on every chunk) and not at the end, or a
    /// stream cut before its end, did not count them.
    pub bytes_after_usage: u64,
    /// Whether the upstream answered at all: from then on it has read the
    /// prompt, which is charged even if no reply text follows.
    pub answered: bool,
    /// The choices that came with their `finish_reason`, by index (a bit
    /// each; `n` is at most 128): once every choice asked for has, the answer
    /// is whole, so a stream that then ends without `[DONE]` lost nothing.
    pub finished: u128,
    /// The prompt estimate and the most prompt and completion tokens the
    /// call is charged (as its [`Bill`] has them), so that a usage passed on
    /// says what is charged: `None` in tests of the relay alone.
    pub bounds: Option<(u64, u64, u64)>,
    /// The last `(prompt, completion)` the caller was shown in a `usage`: a
    /// stream whose text went on after it ends with the counts charged.
    pub usage_shown: Option<(u64, u64)>,
}

/// The most tokens a call is charged and recorded for, each way: more than any
/// call can use (a prompt is at most a 256 MiB body, an answer 128 choices of
/// a million tokens). A larger count from an upstream is its fault, held here
/// so that it cannot wrap when stored or overflow the usage report's sums.
pub const MOST_TOKENS_A_CALL: u64 = 1_000_000_000;

impl Meter {
    /// Whether the upstream answered or sent anything: the call is charged
    /// for it (the prompt at least) however it ends.
    pub fn produced(&self) -> bool {
        self.answered || self.usage.is_some() || self.reply_bytes > 0
    }

    /// The choice with this index has its `finish_reason`.
    pub fn choice_finished(&mut self, index: u64) {
        if let Some(bit) = 1u128.checked_shl(index.min(128) as u32) {
            self.finished |= bit;
        }
    }

    /// How many choices have finished.
    pub fn finished_choices(&self) -> u64 {
        u64::from(self.finished.count_ones())
    }

    /// The `(prompt, completion)` tokens charged for what was produced: the
    /// upstream's usage, or counted where it has none (the hold's estimate
    /// of the prompt; about four bytes of reply a token, as for prompts).
    /// Counted too: text after the last usage, and a count of zero where
    /// there was text, which no tokenizer gives. A reply is charged at most
    /// `most_completion`, the tokens the upstream was asked to stop at, or
    /// what its text shows was sent, if more (an upstream that ignored the
    /// cap): an upstream's count beyond both is not the caller's to pay, nor
    /// is a prompt count beyond `most_prompt`.
    pub fn tokens(
        &self,
        prompt_estimate: u64,
        most_prompt: u64,
        most_completion: u64,
    ) -> (u64, u64) {
        let counted = |bytes: u64| bytes.div_ceil(4);
        let (prompt, completion) = match self.usage {
            None => (
                prompt_estimate,
                counted(self.reply_bytes).min(most_completion),
            ),
            Some((prompt, completion)) => (
                if prompt == 0 {
                    prompt_estimate
                } else {
                    prompt.min(most_prompt)
                },
                if completion == 0 {
                    counted(self.reply_bytes).min(most_completion)
                } else {
                    completion
                        .saturating_add(counted(self.bytes_after_usage))
                        .min(most_completion.max(counted(self.reply_bytes)))
                },
            ),
        };
        (
            prompt.min(MOST_TOKENS_A_CALL),
            completion.min(MOST_TOKENS_A_CALL),
        )
    }

    /// The `(prompt, completion)` tokens charged so far, when the bounds
    /// are known.
    pub fn charged(&self) -> Option<(u64, u64)> {
        self.bounds.map(|(estimate, most_prompt, most_completion)| {
            self.tokens(estimate, most_prompt, most_completion)
        })
    }

    /// Reply text seen: `bytes` more, in an object that did (`with_usage`)
    /// or did not carry usage (text beside usage is counted in it).
    pub fn reply_text(&mut self, bytes: u64, with_usage: bool) {
        self.reply_bytes += bytes;
        if with_usage {
            self.bytes_after_usage = 0;
        } else {
            self.bytes_after_usage += bytes;
        }
    }
}

impl Bill {
    /// A meter for this call's answer, which knows what it may charge.
    pub fn meter(&self) -> Meter {
        Meter {
            answered: true,
            bounds: Some((self.prompt_estimate, self.most_prompt, self.most_completion)),
            ..Meter::default()
        }
    }

    /// The `(prompt, completion)` tokens charged for `meter`.
    pub fn counted(&self, meter: &Meter) -> (u64, u64) {
        meter.tokens(self.prompt_estimate, self.most_prompt, self.most_completion)
    }

    /// Records how long the upstream took in the metrics; in milliseconds.
    pub fn upstream_took(&self, took: std::time::Duration) -> i64 {
        self.instruments.upstream(&self.model, took);
        took.as_millis() as i64
    }

    /// Settles a call whose answer failed after the upstream had read the
    /// prompt (cut off, too slow, carrying an error, not parsing): charged
    /// the prompt at least, and its answer says so. The request's log lines
    /// name the model, for the operator to tell which upstream failed.
    pub fn fail_after_prompt(
        self,
        error: super::providers::UpstreamError,
        meter: &Meter,
    ) -> super::error::GatewayError {
        crate::telemetry::note_model(&self.model);
        let error = super::error::GatewayError::AfterPrompt(error);
        self.settle(error.status().as_u16(), error.code(), meter);
        error
    }

    /// Charges for `meter` (nothing when the upstream never answered). A call
    /// the upstream never answered returns its capped key's use, for the
    /// caller to give back before it answers (dropped, it is given back soon
    /// after).
    pub fn settle(
        mut self,
        status: u16,
        error_code: Option<&str>,
        meter: &Meter,
    ) -> Option<TakenUse> {
        self.settle_once(status, error_code, meter, false)
    }

    /// Settles a call the server stopped at the end of its shutdown grace
    /// period: what it produced is charged, and a capped key's use it did
    /// not need goes back in the settlement's own write, as the server is
    /// about to stop writing.
    pub fn settle_stopped(mut self, meter: &Meter) {
        let code = super::error::GatewayError::Stopping.code();
        let unused = self.settle_once(503, code, meter, true);
        debug_assert!(unused.is_none());
    }

    fn settle_once(
        &mut self,
        status: u16,
        error_code: Option<&str>,
        meter: &Meter,
        stopping: bool,
    ) -> Option<TakenUse> {
        if std::mem::replace(&mut self.settled, true) {
            return None;
        }
        let produced = meter.produced();
        // An answered call keeps the use, and one the server stopped before
        // the answer gives it back, both in the settlement's write; any other
        // call's is given back by the caller, before it answers.
        let (capped_use, unused) = match self.capped_use.take() {
            Some(taken) if produced => (Some(taken.end_with_settlement(CappedUseEnd::Kept)), None),
            Some(taken) if stopping => (
                Some(taken.end_with_settlement(CappedUseEnd::Returned)),
                None,
            ),
            unused => (None, unused),
        };
        let (prompt, completion) = if produced {
            self.counted(meter)
        } else {
            (0, 0)
        };
        if let Some((reported, _)) = meter.usage.filter(|(p, _)| *p > prompt && produced) {
            tracing::warn!(
                request_id = ?self.request_id,
                model = %self.model,
                reported,
                charged = prompt,
                "the upstream reported more prompt tokens than the request could hold"
            );
        }
        if let Some((_, reported)) = meter.usage.filter(|(_, c)| *c > completion) {
            // The operator may be billed for them; the caller is not.
            tracing::warn!(
                request_id = ?self.request_id,
                model = %self.model,
                reported,
                charged = completion,
                "the upstream reported more completion tokens than the call allowed or sent"
            );
        }
        let cost = self.prices.cost(prompt, completion);
        let settled = self.gateway.accounts.settle(Settlement {
            hold: self.hold,
            user_id: self.user_id,
            key_id: Some(self.key_id),
            request_id: self.request_id.take(),
            model: self.model.clone(),
            stream: self.stream,
            status,
            error_code: error_code.map(str::to_owned),
            // Both at most `MOST_TOKENS_A_CALL`: they fit.
            prompt_tokens: prompt as i64,
            completion_tokens: completion as i64,
            reserved_micros: self.reserved_micros,
            cost_micros: cost,
            latency_ms: self.started.elapsed().as_millis() as i64,
            upstream_ms: self.upstream_ms,
            client_ip: self.client_ip.take(),
            capped_use,
        });
        if let Some(charged) = settled {
            self.instruments.credits_spent(&self.model, charged);
        }
        match (settled, unused) {
            // The server, stopping, released the hold and the use with it.
            (None, Some(unused)) => {
                unused.ended_with_hold();
                None
            }
            (_, unused) => unused,
        }
    }
}

/// A stream's bill and what it has sent so far, shared by the stream, which
/// meters each chunk and settles at its end, and the gateway, which settles it
/// at the end of the shutdown grace period if the stream could not: a stream
/// whose client stopped reading is not polled, so it never sees the stop.
#[derive(Default)]
pub struct StreamBill(Mutex<Metered>);

/// What [`StreamBill`] guards.
#[derive(Default)]
pub struct Metered {
    pub meter: Meter,
    /// Taken by the one settlement.
    pub bill: Option<Bill>,
}

impl StreamBill {
    pub fn new(bill: Bill, meter: Meter) -> Arc<Self> {
        Arc::new(Self(Mutex::new(Metered {
            meter,
            bill: Some(bill),
        })))
    }

    pub fn lock(&self) -> MutexGuard<'_, Metered> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The bill and what was sent, for the one settlement; `None` once taken.
    pub fn take(&self) -> Option<(Bill, Meter)> {
        let mut metered = self.lock();
        let bill = metered.bill.take()?;
        Some((bill, std::mem::take(&mut metered.meter)))
    }

    /// Settles a stream the server stopped, for what it sent; false when it
    /// had already settled.
    pub fn settle_stopped(&self) -> bool {
        self.take()
            .map(|(bill, meter)| bill.settle_stopped(&meter))
            .is_some()
    }
}

impl Drop for Bill {
    fn drop(&mut self) {
        if !self.settled {
            tracing::info!(request_id = ?self.request_id, answered = self.answered, "client left before the answer was sent; settling the hold");
            let meter = Meter {
                answered: self.answered,
                ..Meter::default()
            };
            // A use the call did not need is given back as it drops.
            drop(self.settle_once(499, Some("client_disconnected"), &meter, false));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Meter;

    fn meter(usage: Option<(u64, u64)>, reply_bytes: u64) -> Meter {
        Meter {
            usage,
            reply_bytes,
            ..Meter::default()
        }
    }

    /// A reply is charged at most the tokens the call allowed or what its
    /// text shows was sent, whatever the upstream reports; the prompt as
    /// reported (the hold's estimate may fall short of a real tokenizer's),
    /// up to the most the request could hold.
    #[test]
    fn no_reply_is_charged_past_what_the_call_allowed_or_sent() {
        assert_eq!(meter(Some((10, 500)), 40).tokens(7, 900, 10), (10, 10));
        assert_eq!(
            meter(Some((10, 1_000_000_000)), 40).tokens(7, 900, 10),
            (10, 10)
        );
        // The upstream ignored the cap of 10, and its text shows 30 tokens or more.
        assert_eq!(meter(Some((10, 30)), 149).tokens(7, 900, 10), (10, 30));
        assert_eq!(meter(Some((900, 8)), 32).tokens(7, 900, 10), (900, 8));
        assert_eq!(meter(None, 4_000).tokens(7, 900, 10), (7, 10));
        // A prompt count beyond what the request could hold is not charged.
        assert_eq!(
            meter(Some((1_000_000_000, 8)), 32).tokens(7, 900, 10),
            (900, 8)
        );
        assert_eq!(meter(Some((901, 8)), 32).tokens(7, 900, 10), (900, 8));
    }

    /// A count of zero where there was a prompt or a reply is no count.
    #[test]
    fn zero_usage_beside_text_is_counted_instead() {
        assert_eq!(
            meter(Some((0, 0)), 400).tokens(1_000, 9_000, 5_000),
            (1_000, 100)
        );
        assert_eq!(
            meter(Some((0, 0)), 0).tokens(1_000, 9_000, 5_000),
            (1_000, 0)
        );
        assert_eq!(meter(Some((12, 0)), 0).tokens(1_000, 9_000, 5_000), (12, 0));
    }
}
