//! Stage 6 (computed here, taken with the limits): the credit hold is the worst
//! case: the estimated prompt plus every token the reply may have (the cap
//! for each of its `n` choices), at the model's prices.

use super::providers::{MEDIA_PART_MIN_TOKENS, MEDIA_PART_TOKENS, Model, PromptEstimate};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// The prompt's worst case: media parts at their most.
    pub prompt_tokens: u64,
    /// The prompt charged when the upstream reports no usage: media parts
    /// at their least.
    pub prompt_guess: u64,
    /// The cap on each choice, as sent upstream.
    pub max_output_tokens: u64,
    /// How many choices the reply has.
    pub choices: u64,
    pub micros: i64,
}

impl Hold {
    /// `body_tokens`: the estimate of what the request carries beside its
    /// messages (tool definitions, a response schema, fields passed through).
    pub fn worst_case(
        model: &Model,
        messages: &[Value],
        body_tokens: u64,
        max_tokens: Option<u64>,
        choices: u64,
    ) -> Self {
        let estimate = PromptEstimate::of(messages);
        let prompt_tokens = estimate
            .tokens(MEDIA_PART_TOKENS)
            .saturating_add(body_tokens);
        let prompt_guess = estimate
            .tokens(MEDIA_PART_MIN_TOKENS)
            .saturating_add(body_tokens);
        let max_output_tokens = max_tokens.unwrap_or(u64::from(model.max_output_tokens));
        let choices = choices.max(1);
        Self {
            prompt_tokens,
            prompt_guess,
            max_output_tokens,
            choices,
            micros: model
                .prices
                .cost(prompt_tokens, max_output_tokens.saturating_mul(choices)),
        }
    }

    /// Tokens the call may use, for the tokens-per-minute window.
    pub fn tokens(&self) -> u64 {
        self.prompt_tokens
            .saturating_add(self.max_output_tokens.saturating_mul(self.choices))
    }
}
