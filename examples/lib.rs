//! Examples live next to this file; run them with `cargo run -p examples --example NAME`.
