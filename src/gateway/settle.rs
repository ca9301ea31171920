//! Stage 8: after the call, charge what it really cost (the upstream's usage, or
//! counted when it sent none), release the rest of the hold and record the
//! usage, together (in memory at once, in one database batch soon after). A
//! stream that the client abandons is settled for what was produced so far,
//! when its body is dropped.

use std::{sync::Arc, time::Instant};

use super::{Gateway, accounts::Settlement};
use crate::credits::Prices;

/// What is needed to settle one admitted call.
pub struct Bill {
    pub gateway: Arc<Gateway>,
    pub user_id: i64,
    pub key_id: i64,
    pub request_id: Option<String>,
    pub model: String,
    pub prices: Prices,
    pub stream: bool,
    pub reserved_micros: i64,
    pub prompt_estimate: u64,
    pub started: Instant,
    /// Until the upstream answered, once it has.
    pub upstream_ms: Option<i64>,
    pub client_ip: Option<String>,
    pub instruments: crate::instruments::Instruments,
}

/// What the call produced, as `gateway::reply` read it.
#[derive(Debug, Default, Clone)]
pub struct Meter {
    /// The upstream's own `(prompt, completion)` counts, when it sent them.
    pub usage: Option<(u64, u64)>,
    /// Characters of reply text seen, for counting when there is no usage.
    pub reply_chars: u64,
}

impl Meter {
    fn tokens(&self, prompt_estimate: u64) -> (u64, u64) {
        // About four characters per token, as for prompts.
        self.usage
            .unwrap_or((prompt_estimate, self.reply_chars.div_ceil(4)))
    }
}

impl Bill {
    /// Charges for `meter` (nothing when the call failed before any reply).
    pub fn settle(self, status: u16, error_code: Option<&str>, meter: &Meter) {
        let produced = meter.usage.is_some() || meter.reply_chars > 0;
        let (prompt, completion) = if produced {
            meter.tokens(self.prompt_estimate)
        } else {
            (0, 0)
        };
        let cost = self.prices.cost(prompt, completion);
        self.instruments
            .credits_spent(&self.model, cost.clamp(0, self.reserved_micros));
        self.gateway.accounts.settle(Settlement {
            user_id: self.user_id,
            key_id: Some(self.key_id),
            request_id: self.request_id,
            model: self.model,
            stream: self.stream,
            status,
            error_code: error_code.map(str::to_owned),
            prompt_tokens: prompt as i64,
            completion_tokens: completion as i64,
            reserved_micros: self.reserved_micros,
            cost_micros: cost,
            latency_ms: self.started.elapsed().as_millis() as i64,
            upstream_ms: self.upstream_ms,
            client_ip: self.client_ip,
        })
    }
}
