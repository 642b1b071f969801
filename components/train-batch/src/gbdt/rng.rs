//! Seeded pseudo-random numbers, identical on every target and thread count: LightGBM's own generator for
//! the trainer's draws (bin sample, bags, feature subsets), so that a LightGBM configuration with its seed
//! trains the same trees here, and SplitMix64 for everything else (hyper-parameter search, test data).

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

/// SplitMix64 for hyper-parameter search draws.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    inner: SplitMix64,
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

impl Rng {
    /// A generator for `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        // Mixed through one output so nearby seeds do not overlap (the 4 keeps the draws of earlier releases).
        let state = SplitMix64(seed).next_u64() ^ 4u64.wrapping_mul(GOLDEN);
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
}

/// LightGBM's generator (`utils/random.h`): a 32-bit linear congruential generator with the MSVC `rand`
/// constants, its draws and its `Sample` reproduced to the bit.
#[derive(Debug, Clone)]
pub(crate) struct LgbRandom {
    x: u32,
}

impl LgbRandom {
    /// A generator seeded as LightGBM's `Random(int seed)`.
    pub(crate) fn new(seed: i32) -> Self {
        LgbRandom { x: seed as u32 }
    }

    fn step(&mut self) -> u32 {
        self.x = self.x.wrapping_mul(214_013).wrapping_add(2_531_011);
        self.x
    }

    /// `NextShort(lower, upper)`: 15 random bits modulo the range (upper exclusive).
    pub(crate) fn next_short(&mut self, lower: i32, upper: i32) -> i32 {
        ((self.step() >> 16) & 0x7FFF) as i32 % (upper - lower) + lower
    }

    /// `NextInt(lower, upper)`: 31 random bits modulo the range (upper exclusive).
    pub(crate) fn next_int(&mut self, lower: i32, upper: i32) -> i32 {
        (self.step() & 0x7FFF_FFFF) as i32 % (upper - lower) + lower
    }

    /// `NextFloat()`: 15 random bits over 32768, in [0, 1), as an `f32`.
    pub(crate) fn next_float(&mut self) -> f32 {
        ((self.step() >> 16) & 0x7FFF) as f32 / 32768.0
    }

    /// `Sample(N, K)`: `k` distinct indices of `0..n`, ascending; selection sampling when `k` is a large
    /// part of `n`, else Floyd's algorithm, as LightGBM chooses.
    pub(crate) fn sample(&mut self, n: usize, k: usize) -> Vec<u32> {
        if k > n || k == 0 {
            return Vec::new();
        }
        if k == n {
            return (0..n as u32).collect();
        }
        let mut out = Vec::with_capacity(k);
        if k > 1 && k as f64 > n as f64 / (k as f64).log2() {
            for i in 0..n {
                let prob = (k - out.len()) as f64 / (n - i) as f64;
                if f64::from(self.next_float()) < prob {
                    out.push(i as u32);
                }
            }
        } else {
            let mut chosen = std::collections::BTreeSet::new();
            for r in n - k..n {
                let v = self.next_int(0, r as i32 + 1) as u32;
                if !chosen.insert(v) {
                    chosen.insert(r as u32);
                }
            }
            out.extend(chosen);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` `NextShort(0, i16::MAX)` draws of `Random(seed)`: how LightGBM derives its seeds from `seed`.
    fn shorts(seed: i32, n: usize) -> Vec<i32> {
        let mut r = LgbRandom::new(seed);
        (0..n).map(|_| r.next_short(0, i32::from(i16::MAX))).collect()
    }

    /// (len, sum, first five, last) of `Random(seed).Sample(n, k)`.
    fn summary(seed: i32, n: usize, k: usize) -> (usize, u64, Vec<u32>, u32) {
        let v = LgbRandom::new(seed).sample(n, k);
        assert!(v.windows(2).all(|w| w[0] < w[1]));
        (v.len(), v.iter().map(|&x| u64::from(x)).sum(), v[..5.min(v.len())].to_vec(), *v.last().unwrap())
    }

    #[test]
    fn lightgbm_random_matches_lightgbm() {
        // Expected values printed by a C++ program over LightGBM v4's `include/LightGBM/utils/random.h`.
        assert_eq!(shorts(0, 6), [38, 7719, 21238, 2437, 8855, 11797]);
        assert_eq!(shorts(42, 6), [175, 400, 17869, 30056, 16083, 12879]);
        assert_eq!(shorts(-5, 6), [22, 19513, 30221, 13192, 22818, 24931]);
        assert_eq!(summary(2, 158, 140), (140, 10987, vec![0, 2, 3, 5, 6], 157));
        assert_eq!(summary(1, 1000, 100), (100, 51955, vec![5, 13, 31, 61, 65], 987));
        assert_eq!(summary(7, 500, 300), (300, 75758, vec![0, 1, 2, 3, 4], 499));
        assert_eq!(summary(11, 500_000, 200_000), (200_000, 49_953_590_753, vec![0, 3, 6, 7, 10], 499_999));
        assert_eq!(summary(5, 10, 1), (1, 6, vec![6], 6));
        let mut r = LgbRandom::new(3);
        // 0.00146484375 0.219604492 0.283630371 0.277435303: 15-bit draws over 32768, exact in f32.
        let draws: Vec<f32> = (0..4).map(|_| r.next_float() * 32768.0).collect();
        assert_eq!(draws, [48.0, 7196.0, 9294.0, 9091.0]);
        assert!(LgbRandom::new(1).sample(5, 0).is_empty() && LgbRandom::new(1).sample(5, 6).is_empty());
        assert_eq!(LgbRandom::new(1).sample(4, 4), [0, 1, 2, 3]);
    }

    #[test]
    fn search_draws_are_reproducible_and_in_range() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut rng = Rng::new(3);
        let mean =
            (0..10_000).map(|_| rng.next_f64()).inspect(|x| assert!((0.0..1.0).contains(x))).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02);
        assert!((0..1000).all(|_| rng.below(7) < 7));
    }
}
