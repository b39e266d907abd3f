//! A small seeded random generator (xoshiro256** seeded through splitmix64).
//!
//! Causeway owns its generator so that a seed means the same data and the same model on every
//! machine and across dependency upgrades.

/// A deterministic pseudo-random generator; the same seed always gives the same sequence.
#[derive(Debug, Clone)]
pub struct SeededRng {
    state: [u64; 4],
}

impl SeededRng {
    /// A generator seeded from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut mix = seed;
        let mut next = || {
            mix = mix.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = mix;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self { state: [next(), next(), next(), next()] }
    }

    /// A generator for a named sub-stream, so that adding draws in one place does not shift another.
    pub fn derive(seed: u64, stream: &str) -> Self {
        let digest = stream
            .bytes()
            .fold(0xCBF2_9CE4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01B3));
        Self::new(seed ^ digest.rotate_left(17))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.state[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let shifted = self.state[1] << 17;
        self.state[2] ^= self.state[0];
        self.state[3] ^= self.state[1];
        self.state[1] ^= self.state[2];
        self.state[0] ^= self.state[3];
        self.state[2] ^= shifted;
        self.state[3] = self.state[3].rotate_left(45);
        result
    }

    /// A uniform draw from `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform draw from `[low, high)`.
    pub fn range(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.uniform()
    }

    /// A uniform integer from `0..bound` (`bound` > 0; returns 0 when it is 0).
    pub fn below(&mut self, bound: usize) -> usize {
        if bound == 0 {
            return 0;
        }
        ((self.next_u64() as u128 * bound as u128) >> 64) as usize
    }

    /// True with probability `probability`.
    pub fn chance(&mut self, probability: f64) -> bool {
        self.uniform() < probability
    }

    /// A standard normal draw (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let first = self.uniform().max(f64::MIN_POSITIVE);
        let second = self.uniform();
        (-2.0 * first.ln()).sqrt() * (std::f64::consts::TAU * second).cos()
    }

    /// An index drawn with probability proportional to `weights` (all weights ≥ 0).
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut target = self.uniform() * total;
        for (index, weight) in weights.iter().enumerate() {
            if target < *weight {
                return index;
            }
            target -= weight;
        }
        weights.len().saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_other_seed_other_sequence() {
        let mut first = SeededRng::new(7);
        let mut second = SeededRng::new(7);
        let mut other = SeededRng::new(8);
        let a: Vec<u64> = (0..5).map(|_| first.next_u64()).collect();
        let b: Vec<u64> = (0..5).map(|_| second.next_u64()).collect();
        let c: Vec<u64> = (0..5).map(|_| other.next_u64()).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn draws_have_the_expected_moments() {
        let mut rng = SeededRng::new(42);
        let count = 100_000;
        let uniform_mean: f64 = (0..count).map(|_| rng.uniform()).sum::<f64>() / count as f64;
        let normals: Vec<f64> = (0..count).map(|_| rng.normal()).collect();
        let normal_mean = normals.iter().sum::<f64>() / count as f64;
        let normal_variance = normals.iter().map(|x| (x - normal_mean).powi(2)).sum::<f64>() / count as f64;
        assert!((uniform_mean - 0.5).abs() < 0.01, "{uniform_mean}");
        assert!(normal_mean.abs() < 0.02, "{normal_mean}");
        assert!((normal_variance - 1.0).abs() < 0.03, "{normal_variance}");
        let picks = (0..count).filter(|_| rng.weighted(&[1.0, 3.0]) == 1).count();
        assert!((picks as f64 / count as f64 - 0.75).abs() < 0.01);
        assert!((0..1000).all(|_| rng.below(7) < 7));
    }
}
