//! Seeded pseudo-random numbers (SplitMix64): a dozen lines, identical on every target and thread count.

/// Independent random streams derived from the one `seed` parameter (LightGBM also derives its
/// data, bagging and feature seeds from `seed`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    /// Rows sampled to find bin boundaries.
    BinSample = 1,
    /// Rows kept by bagging.
    Bagging = 2,
    /// Features kept by `feature_fraction`.
    Features = 3,
    /// Hyper-parameter samples of a search.
    Search = 4,
}

/// SplitMix64 (Steele, Lea & Flood 2014): fast, well mixed, 64-bit state. Public on its own so tests and
/// benchmarks elsewhere draw deterministic data from the same generator.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// The trainer's generator: SplitMix64 seeded per stream.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    inner: SplitMix64,
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

impl Rng {
    /// A generator for one stream of one seed.
    pub(crate) fn new(seed: u64, stream: Stream) -> Self {
        // Mix the stream id through one output so nearby seeds and streams do not overlap.
        let state = SplitMix64(seed).next_u64() ^ (stream as u64).wrapping_mul(GOLDEN);
        Rng { inner: SplitMix64(state) }
    }

    /// Next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub(crate) fn next_f64(&mut self) -> f64 {
        self.inner.uniform()
    }

    /// Uniform integer in [0, n) by multiply-shift (bias below 2^-32 for our n, irrelevant here).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// `k` distinct indices of `0..n` in ascending order (Knuth's selection sampling, one pass).
    pub(crate) fn sample_sorted(&mut self, n: usize, k: usize) -> Vec<u32> {
        let mut out = Vec::with_capacity(k.min(n));
        let mut needed = k.min(n);
        for i in 0..n {
            if needed == 0 {
                break;
            }
            if (self.next_f64() * (n - i) as f64) < needed as f64 {
                out.push(i as u32);
                needed -= 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7, Stream::Bagging).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::new(7, Stream::Bagging).next_u64(), Rng::new(7, Stream::Features).next_u64());
    }

    #[test]
    fn sample_sorted_takes_exactly_k_ascending() {
        let mut rng = Rng::new(1, Stream::BinSample);
        let s = rng.sample_sorted(1000, 100);
        assert_eq!(s.len(), 100);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert!(s.iter().all(|&i| i < 1000));
        assert_eq!(rng.sample_sorted(5, 10), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn uniform_floats_stay_in_range() {
        let mut rng = Rng::new(3, Stream::Features);
        let mean =
            (0..10_000).map(|_| rng.next_f64()).inspect(|x| assert!((0.0..1.0).contains(x))).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02);
        assert!((0..1000).all(|_| rng.below(7) < 7));
    }
}
