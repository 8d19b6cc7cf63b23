//! Seeded random streams, one per (seed, purpose, index), so results never depend on how work is
//! split across threads, batches or shards.

use rand::SeedableRng;
pub use rand_chacha::ChaCha8Rng;

/// The random generator handed to priors and simulators.
pub type SimRng = ChaCha8Rng;

/// Purpose tags keep the streams of different uses of one seed apart.
pub(crate) mod purpose {
    pub const THETA: u64 = 1;
    pub const SIMULATION: u64 = 2;
    pub const SAMPLING: u64 = 3;
    pub const MCMC: u64 = 4;
    pub const DIAGNOSTIC: u64 = 5;
}

/// splitmix64 finaliser: a cheap bijective mixer, so distinct inputs give distinct keys.
pub(crate) fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Derives a sub-seed from a seed and a tag.
pub fn derive_seed(seed: u64, tag: u64) -> u64 {
    splitmix(seed ^ splitmix(tag))
}

/// The generator for item `index` of the stream `(seed, purpose)`: a ChaCha key from the seed and
/// purpose, and the index as ChaCha's 64-bit stream number.
pub fn stream_rng(seed: u64, purpose: u64, index: u64) -> SimRng {
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, purpose));
    rng.set_stream(index);
    rng
}
