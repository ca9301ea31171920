//! Cargo build script. `sqlx::migrate!` embeds the files in `migrations/` when
//! the crate compiles, but on stable Rust it cannot ask to be rerun when a new
//! file appears there; without this, adding a migration alone left the old set
//! embedded and the server started without it.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
