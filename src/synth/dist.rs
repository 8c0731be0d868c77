//! Bounded discrete power laws, computed the same way on every machine.
//!
//! Owns the heavy-tailed size draws of the generator (fan-out, replicas):
//! `P(k) ∝ k^-alpha` for `k` in `min..=max`, sampled by inverting a
//! cumulative table. `f64::powf`/`ln`/`exp` call the platform's libm, whose
//! last bits differ between systems, so the table uses `ln`/`exp` written
//! here with IEEE-754 `+ - * /` only (exactly rounded everywhere, and Rust
//! never fuses them into FMA): the weights, and so the draws, are bit-for-bit
//! identical on every target.

use super::rng::Rand;

const LN_2: f64 = std::f64::consts::LN_2;

/// Natural logarithm for finite `x > 0` (about 1e-15 relative error);
/// `0.0` for anything else.
pub(super) fn det_ln(x: f64) -> f64 {
    if !(x.is_finite() && x > 0.0) {
        return 0.0;
    }
    let bits = x.to_bits();
    let mut exp = ((bits >> 52) & 0x7ff) as i64;
    let mut mant_bits = bits & 0x000f_ffff_ffff_ffff;
    if exp == 0 {
        // Subnormal: normalise by hand.
        let scaled = x * 18_014_398_509_481_984.0; // 2^54
        let b = scaled.to_bits();
        exp = ((b >> 52) & 0x7ff) as i64 - 54;
        mant_bits = b & 0x000f_ffff_ffff_ffff;
    }
    let mut m = f64::from_bits(mant_bits | 0x3ff0_0000_0000_0000); // [1, 2)
    let mut e = exp - 1023;
    if m > std::f64::consts::SQRT_2 {
        m /= 2.0;
        e += 1;
    }
    // ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = 0.0;
    let mut k = 1.0;
    while k < 40.0 {
        sum += term / k;
        term *= s2;
        k += 2.0;
    }
    (e as f64) * LN_2 + 2.0 * sum
}

/// `e^y` (about 1e-15 relative error); saturates to `0.0` / `f64::MAX`.
pub(super) fn det_exp(y: f64) -> f64 {
    if y.is_nan() {
        return 0.0;
    }
    if y < -700.0 {
        return 0.0;
    }
    if y > 700.0 {
        return f64::MAX;
    }
    let k = (y / LN_2).round();
    let r = y - k * LN_2; // |r| <= 0.35
    let mut term = 1.0;
    let mut sum = 1.0;
    let mut i = 1.0;
    while i < 24.0 {
        term = term * r / i;
        sum += term;
        i += 1.0;
    }
    // 2^k for k in [-1010, 1010]: build the power from its bits.
    let k = k as i64;
    let mut scale = 1.0;
    let mut left = k;
    while left != 0 {
        let step = left.clamp(-1000, 1000);
        scale *= f64::from_bits(((step + 1023) as u64) << 52);
        left -= step;
    }
    sum * scale
}

/// `P(k) ∝ k^-alpha` on `min..=max`, as a cumulative table.
pub(super) struct PowerLaw {
    min: u64,
    cumulative: Vec<f64>,
}

impl PowerLaw {
    /// `alpha` is clamped to `[0, 10]` (NaN counts as 0: uniform);
    /// `min` is at least 1 and `max` at least `min`.
    pub(super) fn new(min: u64, max: u64, alpha: f64) -> Self {
        let min = min.max(1);
        let max = max.max(min);
        let alpha = if alpha.is_finite() { alpha.clamp(0.0, 10.0) } else { 0.0 };
        let mut cumulative = Vec::with_capacity((max - min + 1) as usize);
        let mut total = 0.0;
        for k in min..=max {
            total += det_exp(-alpha * det_ln(k as f64));
            cumulative.push(total);
        }
        PowerLaw { min, cumulative }
    }

    /// One draw.
    pub(super) fn sample(&self, rng: &mut Rand) -> u64 {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let u = rng.unit_f64() * total;
        let i = self.cumulative.partition_point(|&c| c <= u);
        self.min + (i.min(self.cumulative.len().saturating_sub(1))) as u64
    }

    /// The mean of the distribution.
    #[cfg(test)]
    pub(super) fn mean(&self) -> f64 {
        let mut prev = 0.0;
        let mut acc = 0.0;
        for (i, &c) in self.cumulative.iter().enumerate() {
            acc += (self.min + i as u64) as f64 * (c - prev);
            prev = c;
        }
        acc / prev
    }
}
