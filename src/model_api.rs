//! Bounds of the model API that the pages check too, so the playground
//! refuses beside its field what the API would refuse after sending.

/// The most tokens a caller may ask for in one reply (`max_tokens`).
pub const MAX_TOKENS_CEILING: u64 = 1_000_000;
