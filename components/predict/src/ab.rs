//! Champion/challenger assignment: a deterministic hash of (experiment, key) decides the variant,
//! so a key (a symbol, a user) keeps its variant across requests and replicas with no stored state,
//! and each experiment draws its split independently of the others.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Which model serves a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// The model in production.
    Champion,
    /// The candidate being evaluated on live traffic.
    Challenger,
}

impl Variant {
    /// The serialised name: `"champion"` or `"challenger"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Champion => "champion",
            Variant::Challenger => "challenger",
        }
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An assignment could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum AbError {
    /// The challenger's share of traffic is not a fraction.
    #[error("challenger share must be a number in [0, 1], got {0}")]
    InvalidShare(f64),
}

/// The variant serving `key` in `experiment` when the challenger gets `challenger_share` of keys.
///
/// sha256(experiment ‖ 0x00 ‖ key): its first 8 bytes, big-endian, give a u64 whose top 53 bits
/// make a uniform number u in [0, 1); the key goes to the challenger iff u < share. The NUL byte
/// keeps ("ab", "c") and ("a", "bc") apart. Raising the share only moves keys from champion to
/// challenger, never back.
pub fn assign(experiment: &str, key: &str, challenger_share: f64) -> Result<Variant, AbError> {
    if !(0.0..=1.0).contains(&challenger_share) {
        return Err(AbError::InvalidShare(challenger_share));
    }
    Ok(if bucket(experiment, key) < challenger_share { Variant::Challenger } else { Variant::Champion })
}

/// The key's uniform draw in [0, 1) for this experiment.
fn bucket(experiment: &str, key: &str) -> f64 {
    let digest = Sha256::new().chain_update(experiment).chain_update([0u8]).chain_update(key).finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // 53 bits: every value is exactly representable, and the result is strictly below 1.
    (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("SYM{i:05}")).collect()
    }

    #[test]
    fn assignment_is_sticky() {
        for key in keys(200) {
            let first = assign("exp-1", &key, 0.5).unwrap();
            for _ in 0..3 {
                assert_eq!(assign("exp-1", &key, 0.5).unwrap(), first);
            }
        }
    }

    #[test]
    fn the_hash_is_sha256_of_experiment_nul_key() {
        // Python: hashlib.sha256(b"exp\x00AAPL").digest()[:8].hex() == "90c71a4cca561980", and
        // (int.from_bytes(that, "big") >> 11) / 2**53 == 0.5655380666233544.
        assert_eq!(bucket("exp", "AAPL"), (0x90c7_1a4c_ca56_1980u64 >> 11) as f64 / (1u64 << 53) as f64);
        assert!((bucket("exp", "AAPL") - 0.5655380666233544).abs() < 1e-16);
        // The separator matters: shifting a character between the parts changes the draw.
        assert_ne!(bucket("ab", "c"), bucket("a", "bc"));
        let u = bucket("exp", "AAPL");
        assert_eq!(assign("exp", "AAPL", u).unwrap(), Variant::Champion);
        assert_eq!(assign("exp", "AAPL", (u + 1e-12).min(1.0)).unwrap(), Variant::Challenger);
    }

    #[test]
    fn extreme_shares() {
        for key in keys(1000) {
            assert_eq!(assign("exp", &key, 0.0).unwrap(), Variant::Champion);
            assert_eq!(assign("exp", &key, 1.0).unwrap(), Variant::Challenger);
        }
    }

    #[test]
    fn invalid_shares_are_rejected() {
        for share in [-0.1, 1.0001, f64::NAN, f64::INFINITY] {
            let err = assign("exp", "k", share).unwrap_err();
            assert!(err.to_string().contains("[0, 1]"), "{err}");
        }
    }

    #[test]
    fn realised_fraction_matches_share() {
        let keys = keys(10_000);
        let challengers = keys.iter().filter(|k| assign("exp-frac", k, 0.3).unwrap() == Variant::Challenger).count();
        let fraction = challengers as f64 / keys.len() as f64;
        assert!((fraction - 0.3).abs() < 0.02, "{fraction}");
        // Monotone in the share: every challenger at 0.3 is still one at 0.5.
        for k in &keys {
            if assign("exp-frac", k, 0.3).unwrap() == Variant::Challenger {
                assert_eq!(assign("exp-frac", k, 0.5).unwrap(), Variant::Challenger);
            }
        }
    }

    #[test]
    fn experiments_assign_independently() {
        let keys = keys(10_000);
        let a: Vec<bool> = keys.iter().map(|k| assign("exp-a", k, 0.5).unwrap() == Variant::Challenger).collect();
        let b: Vec<bool> = keys.iter().map(|k| assign("exp-b", k, 0.5).unwrap() == Variant::Challenger).collect();
        // Independent halves agree on about half the keys (sd 0.005); identical or mirrored
        // assignments would give 1 or 0.
        let agree = a.iter().zip(&b).filter(|(x, y)| x == y).count() as f64 / keys.len() as f64;
        assert!((agree - 0.5).abs() < 0.03, "{agree}");
        // Both-challenger cells ≈ 0.25 as for independent draws.
        let both = a.iter().zip(&b).filter(|(x, y)| **x && **y).count() as f64 / keys.len() as f64;
        assert!((both - 0.25).abs() < 0.02, "{both}");
    }

    #[test]
    fn variant_names() {
        assert_eq!(Variant::Champion.as_str(), "champion");
        assert_eq!(serde_json::to_string(&Variant::Challenger).unwrap(), "\"challenger\"");
        assert_eq!(serde_json::from_str::<Variant>("\"champion\"").unwrap(), Variant::Champion);
        assert_eq!(Variant::Challenger.to_string(), "challenger");
    }
}
