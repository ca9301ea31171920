//! API keys: the format (`format`) and the keyed hash they are stored as (`hashing`).

pub mod format;
pub mod hashing;
