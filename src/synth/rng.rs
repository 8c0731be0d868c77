//! Portable seeded randomness for the generators.
//!
//! Owns the one source of randomness: a ChaCha8 stream (`rand_chacha`) whose
//! 256-bit key is expanded from the user's `u64` seed and a per-purpose
//! stream tag with SplitMix64 (our own code, not `SeedableRng::seed_from_u64`),
//! so the key cannot change with a `rand_core` release. Only `next_u64` of the
//! generator is used; bounded integers (Lemire's multiply-and-reject) and
//! probabilities (parts per million) are computed here with integer
//! arithmetic. No `rand` distribution, no `StdRng`/`thread_rng`: the output is
//! the same for the same seed on every machine and every version of `rand`.

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

/// Stream tag for the call graph.
pub(super) const STREAM_GRAPH: u64 = 0x6772_6170_6800_0001;
/// Stream tag for the policies.
pub(super) const STREAM_POLICIES: u64 = 0x706f_6c69_6300_0002;
/// Stream tag for the MaxSAT instances of `maxsat`.
pub(super) const STREAM_MAXSAT: u64 = 0x6d61_7873_6174_0003;

/// One million: probabilities are integers in parts per million.
pub(super) const PPM: u32 = 1_000_000;

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seeded random source with the few draws the generators need.
pub(super) struct Rand {
    rng: ChaCha8Rng,
}

impl Rand {
    /// The stream `stream` of seed `seed`.
    pub(super) fn new(seed: u64, stream: u64) -> Self {
        let mut state = seed ^ stream.rotate_left(17);
        let mut key = [0u8; 32];
        for chunk in key.chunks_exact_mut(8) {
            chunk.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
        }
        Rand {
            rng: ChaCha8Rng::from_seed(key),
        }
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Uniform in `0..n`; `0` when `n == 0`.
    pub(super) fn below_u64(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Lemire, "Fast random integer generation in an interval" (2019).
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }

    /// Uniform in `0..n`; `0` when `n == 0`.
    pub(super) fn below(&mut self, n: usize) -> usize {
        self.below_u64(n as u64) as usize
    }

    /// True with probability `ppm / 1_000_000`.
    pub(super) fn chance(&mut self, ppm: u32) -> bool {
        self.below_u64(u64::from(PPM)) < u64::from(ppm)
    }

    /// A uniform element of `items`, `None` when it is empty.
    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.below(items.len()))
        }
    }

    /// Index drawn with the given integer weights (`None` when all are 0).
    pub(super) fn weighted(&mut self, weights: &[u32]) -> Option<usize> {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        if total == 0 {
            return None;
        }
        let mut r = self.below_u64(total);
        for (i, &w) in weights.iter().enumerate() {
            if r < u64::from(w) {
                return Some(i);
            }
            r -= u64::from(w);
        }
        None
    }

    /// A uniform `f64` in `[0, 1)` built from the top 53 bits (exact).
    pub(super) fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }
}

/// `x` in `[0, 1]` as parts per million; `default` when `x` is not finite.
pub(super) fn to_ppm(x: f64, default: u32) -> u32 {
    if x.is_finite() {
        (x.clamp(0.0, 1.0) * f64::from(PPM)).round() as u32
    } else {
        default
    }
}
