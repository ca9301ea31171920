//! Stage 6 (computed here, taken with the limits): the credit hold is the worst
//! case: the estimated prompt plus every token the reply may have (the cap
//! for each of its `n` choices), at the model's prices.

use super::providers::{MEDIA_PART_MIN_TOKENS, MEDIA_PART_TOKENS, Model, PromptEstimate};

/// The most prompt tokens a media part is charged, whatever the upstream
/// reports: far beyond an image, room for an hour of video.
pub const MEDIA_PART_MOST_TOKENS: u64 = 1_000_000;

/// Prompt tokens an upstream may add to what a request carries and still
/// be paid for: a long chat template or built-in system prompt, a search
/// tool's results (OpenRouter's web plugin bills them as prompt).
pub const UPSTREAM_ADDED_TOKENS: u64 = 200_000;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// The prompt's worst case: media parts at their most.
    pub prompt_tokens: u64,
    /// The prompt charged when the upstream reports no usage: media parts
    /// at their least.
    pub prompt_guess: u64,
    /// The most prompt tokens charged whatever the upstream reports: a
    /// token is at least a byte of what was sent (the request, and the
    /// model's own system prompt), beside a few a message for the chat
    /// template, media parts at [`MEDIA_PART_MOST_TOKENS`] and
    /// [`UPSTREAM_ADDED_TOKENS`] for what the upstream adds. An upstream
    /// reporting more is wrong, and it is not the caller's to pay.
    pub prompt_most: u64,
    /// The cap on each choice, as sent upstream.
    pub max_output_tokens: u64,
    /// How many choices the reply has.
    pub choices: u64,
    pub micros: i64,
}

impl Hold {
    /// `body_tokens`: the estimate of what the request carries beside its
    /// messages (tool definitions, a response schema, fields passed through);
    /// `body_bytes`: the request body's size.
    pub fn worst_case(
        model: &Model,
        messages: &[Value],
        body_tokens: u64,
        body_bytes: u64,
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
        let system_bytes = model.system_prompt.as_ref().map_or(0, |s| s.len() as u64);
        let prompt_most = body_bytes
            .saturating_add(system_bytes)
            .saturating_add(16 * messages.len() as u64 + 256 + UPSTREAM_ADDED_TOKENS)
            .saturating_add(estimate.media_parts.saturating_mul(MEDIA_PART_MOST_TOKENS))
            .max(prompt_tokens);
        let max_output_tokens = max_tokens.unwrap_or(u64::from(model.max_output_tokens));
        let choices = choices.max(1);
        Self {
            prompt_tokens,
            prompt_guess,
            prompt_most,
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
