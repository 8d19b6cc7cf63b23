//! Criterion benchmarks that span crates live in `benches/benches/`.
