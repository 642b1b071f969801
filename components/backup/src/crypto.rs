//! The archive's cryptography: an Argon2id key from the `backup_key` passphrase, a key-check value that
//! tells a wrong key from tampering, AES-256-GCM sealing, and salts and nonces from the OS random source
//! (`wasi:random` in wasm).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use argon2::{Algorithm, Argon2, Params, Version};
use sha2::{Digest, Sha256};

use crate::error::BackupError;

/// Salt length in bytes (random per archive).
pub const SALT_LEN: usize = 16;
/// AES-GCM nonce length in bytes (random per archive; each key seals one archive only).
pub const NONCE_LEN: usize = 12;
/// Key-check length in bytes.
pub const KEY_CHECK_LEN: usize = 16;
/// AES-GCM authentication tag length in bytes.
pub const TAG_LEN: usize = 16;

/// Argon2id cost parameters, stored in each archive's header so a reader derives the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes over memory.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// OWASP's minimum for Argon2id (19 MiB, 2 passes, 1 lane): well under a second natively.
    pub const DEFAULT: KdfParams = KdfParams { m_cost_kib: 19 * 1024, t_cost: 2, p_cost: 1 };

    /// Largest memory a reader will spend on one archive (1 GiB): a header cannot make it allocate more.
    const MAX_M_COST_KIB: u32 = 1024 * 1024;
    const MAX_T_COST: u32 = 64;
    const MAX_P_COST: u32 = 16;

    fn argon2(&self) -> Result<Argon2<'static>, String> {
        if self.m_cost_kib > Self::MAX_M_COST_KIB || self.t_cost > Self::MAX_T_COST || self.p_cost > Self::MAX_P_COST {
            return Err(format!(
                "KDF parameters m={} KiB t={} p={} exceed this build's limits (m <= {} KiB, t <= {}, p <= {})",
                self.m_cost_kib,
                self.t_cost,
                self.p_cost,
                Self::MAX_M_COST_KIB,
                Self::MAX_T_COST,
                Self::MAX_P_COST
            ));
        }
        let params = Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))
            .map_err(|e| format!("KDF parameters m={} t={} p={}: {e}", self.m_cost_kib, self.t_cost, self.p_cost))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Cheap parameters so tests that derive many keys stay fast in debug builds.
#[cfg(test)]
pub(crate) const TEST_KDF: KdfParams = KdfParams { m_cost_kib: 64, t_cost: 1, p_cost: 1 };

/// A 256-bit archive key derived from a passphrase.
pub struct DerivedKey([u8; 32]);

/// Derives the archive key from the passphrase and the archive's salt. Parameters a reader refuses (out
/// of range) come back as `Err(description)`, so the caller can say whether the header or the caller is wrong.
pub fn derive_key(passphrase: &str, salt: &[u8; SALT_LEN], params: &KdfParams) -> Result<DerivedKey, String> {
    let argon2 = params.argon2()?;
    let mut key = [0u8; 32];
    argon2.hash_password_into(passphrase.as_bytes(), salt, &mut key).map_err(|e| format!("Argon2id failed: {e}"))?;
    Ok(DerivedKey(key))
}

impl DerivedKey {
    /// A value that identifies the key without revealing it: SHA-256 of a domain tag and the key, cut
    /// short. Finding the key from it is as hard as inverting SHA-256; guessing the passphrase still costs
    /// one Argon2id per guess, as it would against the ciphertext.
    pub fn check_value(&self) -> [u8; KEY_CHECK_LEN] {
        let digest = Sha256::new().chain_update(b"stockops-backup/key-check/v1\0").chain_update(self.0).finalize();
        let mut out = [0u8; KEY_CHECK_LEN];
        out.copy_from_slice(&digest[..KEY_CHECK_LEN]);
        out
    }

    /// Encrypts and authenticates `plaintext`, also authenticating `aad` (the archive header).
    pub fn seal(&self, nonce: &[u8; NONCE_LEN], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, BackupError> {
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0));
        cipher
            .encrypt(Nonce::from_slice(nonce), Payload { msg: plaintext, aad })
            .map_err(|_| BackupError::Crypto(format!("AES-256-GCM cannot seal {} bytes", plaintext.len())))
    }

    /// Decrypts `ciphertext`; `Tampered` when the ciphertext, tag or `aad` changed since it was sealed.
    pub fn open(&self, nonce: &[u8; NONCE_LEN], ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>, BackupError> {
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0));
        cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad }).map_err(|_| {
            BackupError::Tampered("AES-256-GCM authentication failed: the header or ciphertext was modified".into())
        })
    }
}

/// `N` bytes from the OS random source.
pub fn random<const N: usize>() -> Result<[u8; N], BackupError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| BackupError::Crypto(format!("random source failed: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = TEST_KDF;

    #[test]
    fn same_passphrase_and_salt_give_the_same_key_and_others_do_not() {
        let salt = [7u8; SALT_LEN];
        let a = derive_key("correct horse", &salt, &FAST).unwrap();
        let b = derive_key("correct horse", &salt, &FAST).unwrap();
        let c = derive_key("correct horsf", &salt, &FAST).unwrap();
        let d = derive_key("correct horse", &[8u8; SALT_LEN], &FAST).unwrap();
        assert_eq!(a.check_value(), b.check_value());
        assert_ne!(a.check_value(), c.check_value());
        assert_ne!(a.check_value(), d.check_value());
        // The check value is not the key itself.
        assert_ne!(&a.0[..KEY_CHECK_LEN], &a.check_value()[..]);
    }

    #[test]
    fn seal_and_open_round_trip_and_any_change_is_refused() {
        let key = derive_key("k", &[1u8; SALT_LEN], &FAST).unwrap();
        let nonce = random::<NONCE_LEN>().unwrap();
        let sealed = key.seal(&nonce, b"payload", b"header").unwrap();
        assert_eq!(sealed.len(), b"payload".len() + TAG_LEN);
        assert_eq!(key.open(&nonce, &sealed, b"header").unwrap(), b"payload");
        assert!(matches!(key.open(&nonce, &sealed, b"headeR"), Err(BackupError::Tampered(_))));
        let mut flipped = sealed.clone();
        flipped[0] ^= 1;
        assert!(matches!(key.open(&nonce, &flipped, b"header"), Err(BackupError::Tampered(_))));
    }

    #[test]
    fn out_of_range_parameters_are_refused_before_allocating() {
        let huge = KdfParams { m_cost_kib: u32::MAX, t_cost: 1, p_cost: 1 };
        assert!(derive_key("k", &[0u8; SALT_LEN], &huge).is_err());
        let too_small = KdfParams { m_cost_kib: 1, t_cost: 1, p_cost: 1 };
        assert!(derive_key("k", &[0u8; SALT_LEN], &too_small).is_err());
    }

    #[test]
    fn random_values_differ() {
        assert_ne!(random::<16>().unwrap(), random::<16>().unwrap());
    }

    /// Prints how long the production parameters take (run with `--nocapture`; build with `--release`
    /// for a number that means anything). No assertion on time: machines differ.
    #[test]
    fn default_kdf_timing() {
        let started = std::time::Instant::now();
        let key = derive_key("a passphrase of ordinary length", &[3u8; SALT_LEN], &KdfParams::DEFAULT).unwrap();
        let elapsed = started.elapsed();
        println!(
            "Argon2id m={} KiB t={} p={}: {:.0} ms ({} build)",
            KdfParams::DEFAULT.m_cost_kib,
            KdfParams::DEFAULT.t_cost,
            KdfParams::DEFAULT.p_cost,
            elapsed.as_secs_f64() * 1e3,
            if cfg!(debug_assertions) { "debug" } else { "release" }
        );
        assert_eq!(key.check_value().len(), KEY_CHECK_LEN);
    }
}
