//! The archive file format: a plain header, then the AES-256-GCM ciphertext of the payload (the manifest
//! and the gzip-compressed parts), with the whole header as associated data.
//!
//! Header, little-endian, [`HEADER_LEN`] bytes:
//!
//! | bytes  | field                                                                  |
//! |--------|------------------------------------------------------------------------|
//! | 0..16  | magic `STOCKOPS-BACKUP\0`                                              |
//! | 16..20 | format version (`u32`)                                                 |
//! | 20..32 | Argon2id memory KiB, passes, lanes (`u32` each)                        |
//! | 32..48 | salt                                                                   |
//! | 48..60 | nonce                                                                  |
//! | 60..76 | key check (tells a wrong key from a modified archive)                  |
//! | 76..84 | ciphertext length including the 16-byte tag (`u64`): finds truncation |
//! | 84..100| first 16 bytes of SHA-256 of bytes 0..84: finds a damaged header       |
//!
//! Payload (plaintext): `u32` manifest length, the manifest JSON, then each part's gzip bytes in manifest
//! order. Each part's manifest entry holds its sizes, row count and the SHA-256 of its uncompressed bytes.
//! Reading checks, in order: magic, version, length, header checksum, key check, authentication, then
//! every part's size, checksum and row count, so nothing reaches a database unverified.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use stockops_core::{Rows, SqlValue};

use crate::crypto::{self, KEY_CHECK_LEN, KdfParams, NONCE_LEN, SALT_LEN, TAG_LEN};
use crate::error::BackupError;
use crate::rows;
use crate::snapshot::{KvEntries, Snapshot, Table};

/// The first bytes of every archive.
pub const MAGIC: &[u8; 16] = b"STOCKOPS-BACKUP\0";
/// The format this build writes and the only one it reads.
pub const FORMAT_VERSION: u32 = 1;
/// Length of the plain header in front of the ciphertext.
pub const HEADER_LEN: usize = 100;
/// Where the header checksum starts (it covers every byte before it).
const CHECKSUM_AT: usize = 84;
/// Name of the configuration part.
pub const CONFIG_PART: &str = "config";

/// What an archive holds: shown by `stockops backup verify`, stored with each catalogue row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Archive format version.
    pub format_version: u32,
    /// Backup id.
    pub id: String,
    /// When the snapshot was taken (RFC 3339, UTC).
    pub created_at: String,
    /// Schema version of the database the tables come from.
    pub schema_version: i64,
    /// Version of the stockops build that wrote it.
    pub app_version: String,
    /// The parts, in payload order.
    pub parts: Vec<PartInfo>,
}

/// One part of an archive: a table, the configuration, or key-value entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartInfo {
    /// Table name, [`CONFIG_PART`], or a key prefix.
    pub name: String,
    /// What the part holds.
    pub kind: PartKind,
    /// Rows (tables), settings (config) or entries (key-value).
    pub rows: u64,
    /// SHA-256 of the uncompressed bytes, hex.
    pub sha256: String,
    /// Size in the payload (gzip).
    pub compressed_bytes: u64,
    /// Size once decompressed.
    pub uncompressed_bytes: u64,
}

/// The kinds of parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartKind {
    /// A database table in the rows codec.
    Table,
    /// The configuration: a JSON object of strings.
    Config,
    /// Key-value entries under one prefix, in the rows codec as (key TEXT, value BLOB).
    Kv,
}

impl Manifest {
    /// Rows over all table parts.
    pub fn table_rows(&self) -> u64 {
        self.parts.iter().filter(|p| p.kind == PartKind::Table).map(|p| p.rows).sum()
    }
}

/// The plain header's fields.
struct Header {
    kdf: KdfParams,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    key_check: [u8; KEY_CHECK_LEN],
    ciphertext_len: u64,
}

impl Header {
    fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..16].copy_from_slice(MAGIC);
        h[16..20].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        h[20..24].copy_from_slice(&self.kdf.m_cost_kib.to_le_bytes());
        h[24..28].copy_from_slice(&self.kdf.t_cost.to_le_bytes());
        h[28..32].copy_from_slice(&self.kdf.p_cost.to_le_bytes());
        h[32..48].copy_from_slice(&self.salt);
        h[48..60].copy_from_slice(&self.nonce);
        h[60..76].copy_from_slice(&self.key_check);
        h[76..84].copy_from_slice(&self.ciphertext_len.to_le_bytes());
        let sum = header_checksum(&h[..CHECKSUM_AT]);
        h[CHECKSUM_AT..].copy_from_slice(&sum);
        h
    }

    /// Parses and checks the header of `bytes` and that the whole archive is there.
    fn parse(bytes: &[u8]) -> Result<Header, BackupError> {
        let actual = bytes.len() as u64;
        let truncated = |expected: usize| BackupError::Truncated { expected: expected as u64, actual };
        if bytes.len() < MAGIC.len() {
            // A prefix of the magic (an empty file included) is an archive cut short, anything else is not one.
            return Err(if MAGIC.starts_with(bytes) { truncated(HEADER_LEN) } else { BackupError::NotAnArchive });
        }
        if &bytes[..16] != MAGIC {
            return Err(BackupError::NotAnArchive);
        }
        if bytes.len() < 20 {
            return Err(truncated(HEADER_LEN));
        }
        // The version first: a later format may lay out the rest of its header differently.
        let version = u32::from_le_bytes(array(&bytes[16..20]));
        if version != FORMAT_VERSION {
            return Err(BackupError::UnsupportedFormat { found: version, supported: FORMAT_VERSION });
        }
        if bytes.len() < HEADER_LEN {
            return Err(truncated(HEADER_LEN));
        }
        let h = &bytes[..HEADER_LEN];
        if header_checksum(&h[..CHECKSUM_AT]) != h[CHECKSUM_AT..] {
            return Err(BackupError::Tampered("the header checksum does not match: the header was modified".into()));
        }
        let header = Header {
            kdf: KdfParams {
                m_cost_kib: u32::from_le_bytes(array(&h[20..24])),
                t_cost: u32::from_le_bytes(array(&h[24..28])),
                p_cost: u32::from_le_bytes(array(&h[28..32])),
            },
            salt: array(&h[32..48]),
            nonce: array(&h[48..60]),
            key_check: array(&h[60..76]),
            ciphertext_len: u64::from_le_bytes(array(&h[76..84])),
        };
        let expected = (HEADER_LEN as u64).checked_add(header.ciphertext_len).filter(|_| header.ciphertext_len >= 16);
        match expected {
            Some(expected) if actual < expected => Err(BackupError::Truncated { expected, actual }),
            Some(expected) if actual > expected => Err(BackupError::Tampered(format!(
                "{} bytes follow the end of the archive (the header says {expected} bytes in all)",
                actual - expected
            ))),
            Some(_) => Ok(header),
            None => Err(BackupError::Tampered(format!(
                "the header's ciphertext length {} is impossible",
                header.ciphertext_len
            ))),
        }
    }
}

fn header_checksum(bytes: &[u8]) -> [u8; HEADER_LEN - CHECKSUM_AT] {
    array(&Sha256::digest(bytes)[..HEADER_LEN - CHECKSUM_AT])
}

/// A fixed-size array from a slice of exactly that length (callers slice with constant bounds).
fn array<const N: usize>(slice: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(slice);
    out
}

/// Encodes, compresses and encrypts `snapshot` as archive `id`, taken at `created_at`.
/// Returns the archive's bytes and its manifest.
pub fn seal(
    snapshot: &Snapshot,
    id: &str,
    created_at: &str,
    passphrase: &str,
    kdf: &KdfParams,
) -> Result<(Vec<u8>, Manifest), BackupError> {
    if passphrase.is_empty() {
        return Err(BackupError::MissingKey);
    }
    let mut parts = Vec::new();
    let mut bodies = Vec::new();
    let mut add = |name: &str, kind: PartKind, rows: usize, raw: Vec<u8>| -> Result<(), BackupError> {
        let compressed = gzip(&raw).map_err(|e| BackupError::Corrupt { part: name.into(), why: e })?;
        parts.push(PartInfo {
            name: name.to_string(),
            kind,
            rows: rows as u64,
            sha256: hex::encode(Sha256::digest(&raw)),
            compressed_bytes: compressed.len() as u64,
            uncompressed_bytes: raw.len() as u64,
        });
        bodies.push(compressed);
        Ok(())
    };
    for t in &snapshot.tables {
        let raw = rows::encode(&t.rows).map_err(|why| BackupError::Corrupt { part: t.name.clone(), why })?;
        add(&t.name, PartKind::Table, t.rows.rows.len(), raw)?;
    }
    let config = serde_json::to_vec(&snapshot.config)
        .map_err(|e| BackupError::Corrupt { part: CONFIG_PART.into(), why: e.to_string() })?;
    add(CONFIG_PART, PartKind::Config, snapshot.config.len(), config)?;
    for kv in &snapshot.kv {
        let raw = rows::encode(&kv_rows(kv)).map_err(|why| BackupError::Corrupt { part: kv.prefix.clone(), why })?;
        add(&kv.prefix, PartKind::Kv, kv.entries.len(), raw)?;
    }
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        id: id.to_string(),
        created_at: created_at.to_string(),
        schema_version: snapshot.schema_version,
        app_version: env!("CARGO_PKG_VERSION").to_string(),
        parts,
    };
    let manifest_json = serde_json::to_vec(&manifest)
        .map_err(|e| BackupError::Corrupt { part: "manifest".into(), why: e.to_string() })?;
    let manifest_len = u32::try_from(manifest_json.len())
        .map_err(|_| BackupError::Corrupt { part: "manifest".into(), why: "longer than 4 GiB".into() })?;
    let mut payload = Vec::with_capacity(4 + manifest_json.len() + bodies.iter().map(Vec::len).sum::<usize>());
    payload.extend_from_slice(&manifest_len.to_le_bytes());
    payload.extend_from_slice(&manifest_json);
    for b in &bodies {
        payload.extend_from_slice(b);
    }
    drop(bodies);

    let salt = crypto::random::<SALT_LEN>()?;
    let nonce = crypto::random::<NONCE_LEN>()?;
    let key = crypto::derive_key(passphrase, &salt, kdf).map_err(BackupError::Crypto)?;
    let header = Header {
        kdf: *kdf,
        salt,
        nonce,
        key_check: key.check_value(),
        ciphertext_len: (payload.len() + TAG_LEN) as u64,
    }
    .to_bytes();
    let ciphertext = key.seal(&nonce, &payload, &header)?;
    let mut out = Vec::with_capacity(HEADER_LEN + ciphertext.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&ciphertext);
    Ok((out, manifest))
}

/// Checks, decrypts and decodes an archive, verifying every part against the manifest.
pub fn open(bytes: &[u8], passphrase: &str) -> Result<(Manifest, Snapshot), BackupError> {
    if passphrase.is_empty() {
        return Err(BackupError::MissingKey);
    }
    let header = Header::parse(bytes)?;
    // Parameters outside what this build accepts passed the header checksum: someone wrote them on purpose.
    let key = crypto::derive_key(passphrase, &header.salt, &header.kdf).map_err(BackupError::Tampered)?;
    if !stockops_core::constant_time_eq(&key.check_value(), &header.key_check) {
        return Err(BackupError::WrongKey);
    }
    let payload = key.open(&header.nonce, &bytes[HEADER_LEN..], &bytes[..HEADER_LEN])?;
    decode_payload(&payload)
}

/// Splits an authenticated payload into its manifest and parts and checks each part against it.
fn decode_payload(payload: &[u8]) -> Result<(Manifest, Snapshot), BackupError> {
    let corrupt_manifest = |why: String| BackupError::Corrupt { part: "manifest".into(), why };
    let manifest_len = payload
        .get(..4)
        .map(|b| u32::from_le_bytes(array(b)) as usize)
        .ok_or_else(|| corrupt_manifest("payload shorter than the manifest length".into()))?;
    let manifest_json = payload
        .get(4..4 + manifest_len)
        .ok_or_else(|| corrupt_manifest(format!("length {manifest_len} exceeds the payload")))?;
    let manifest: Manifest = serde_json::from_slice(manifest_json).map_err(|e| corrupt_manifest(e.to_string()))?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(corrupt_manifest(format!(
            "format version {} differs from the header's {FORMAT_VERSION}",
            manifest.format_version
        )));
    }
    let mut seen = BTreeSet::new();
    let mut rest = &payload[4 + manifest_len..];
    let mut snapshot =
        Snapshot { schema_version: manifest.schema_version, tables: vec![], config: BTreeMap::new(), kv: vec![] };
    for part in &manifest.parts {
        let corrupt = |why: String| BackupError::Corrupt { part: part.name.clone(), why };
        if !seen.insert((part.kind, part.name.as_str())) {
            return Err(corrupt(format!("appears twice as a {:?} part", part.kind)));
        }
        let size = usize::try_from(part.compressed_bytes).ok().filter(|n| *n <= rest.len()).ok_or_else(|| {
            corrupt(format!("compressed size {} exceeds the {} payload bytes left", part.compressed_bytes, rest.len()))
        })?;
        let (compressed, tail) = rest.split_at(size);
        rest = tail;
        let raw = gunzip(compressed, part.uncompressed_bytes).map_err(&corrupt)?;
        let sha = hex::encode(Sha256::digest(&raw));
        if sha != part.sha256 {
            return Err(corrupt(format!("sha256 {sha} differs from the manifest's {}", part.sha256)));
        }
        let count = match part.kind {
            PartKind::Table => {
                let rows = rows::decode(&raw).map_err(&corrupt)?;
                let n = rows.rows.len();
                snapshot.tables.push(Table { name: part.name.clone(), rows });
                n
            }
            PartKind::Config => {
                if part.name != CONFIG_PART {
                    return Err(corrupt(format!("a config part must be named {CONFIG_PART}")));
                }
                snapshot.config = serde_json::from_slice(&raw).map_err(|e| corrupt(e.to_string()))?;
                snapshot.config.len()
            }
            PartKind::Kv => {
                let kv = kv_entries(&part.name, rows::decode(&raw).map_err(&corrupt)?).map_err(&corrupt)?;
                let n = kv.entries.len();
                snapshot.kv.push(kv);
                n
            }
        };
        if count as u64 != part.rows {
            return Err(corrupt(format!("{count} rows decoded, the manifest says {}", part.rows)));
        }
    }
    if !rest.is_empty() {
        return Err(corrupt_manifest(format!("{} payload bytes belong to no part", rest.len())));
    }
    Ok((manifest, snapshot))
}

/// Key-value entries as rows (key TEXT, value BLOB), so they share the exact rows codec.
fn kv_rows(kv: &KvEntries) -> Rows {
    Rows {
        columns: vec!["key".into(), "value".into()],
        rows: kv.entries.iter().map(|(k, v)| vec![SqlValue::Text(k.clone()), SqlValue::Blob(v.clone())]).collect(),
    }
}

fn kv_entries(prefix: &str, rows: Rows) -> Result<KvEntries, String> {
    if rows.columns != ["key", "value"] {
        return Err(format!("key-value columns are {:?}, expected [\"key\", \"value\"]", rows.columns));
    }
    let mut entries = BTreeMap::new();
    for (i, row) in rows.rows.into_iter().enumerate() {
        match <[SqlValue; 2]>::try_from(row) {
            Ok([SqlValue::Text(k), SqlValue::Blob(v)]) if k.starts_with(prefix) => {
                entries.insert(k, v);
            }
            _ => return Err(format!("entry {i} is not a (key under {prefix:?}, bytes) pair")),
        }
    }
    Ok(KvEntries { prefix: prefix.to_string(), entries })
}

fn gzip(raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(raw).and_then(|_| enc.finish()).map_err(|e| format!("gzip failed: {e}"))
}

/// Decompresses exactly `expected` bytes; more or fewer is an error (and more is never allocated).
fn gunzip(compressed: &[u8], expected: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    GzDecoder::new(compressed)
        .take(expected.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| format!("gzip stream is invalid: {e}"))?;
    if out.len() as u64 != expected {
        let found = if out.len() as u64 > expected { format!("more than {expected}") } else { out.len().to_string() };
        return Err(format!("decompresses to {found} bytes, the manifest says {expected}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::TEST_KDF;

    const KEY: &str = "correct horse battery staple";

    pub(crate) fn sample_snapshot() -> Snapshot {
        let bars = Rows {
            columns: vec!["symbol".into(), "date".into(), "close".into(), "vwap".into()],
            rows: vec![
                vec!["AAPL".into(), "2026-11-25".into(), SqlValue::Real(230.125), SqlValue::Null],
                vec!["MSFT".into(), "2026-11-25".into(), SqlValue::Real(0.1 + 0.2), SqlValue::Real(-0.0)],
            ],
        };
        let artifacts = Rows {
            columns: vec!["name".into(), "version".into(), "kind".into(), "chunk".into(), "data".into()],
            rows: vec![vec![
                "m".into(),
                SqlValue::Integer(i64::MAX),
                "onnx".into(),
                SqlValue::Integer(0),
                SqlValue::Blob((0..=255u8).cycle().take(70_000).collect()),
            ]],
        };
        let empty = Rows { columns: vec!["id".into()], rows: vec![] };
        let mut config = BTreeMap::new();
        config.insert("log_level".into(), "info".into());
        config.insert("backup_retention_days".into(), "30".into());
        let mut entries = BTreeMap::new();
        entries.insert("feature-sets/mine".into(), br#"{"name":"mine"}"#.to_vec());
        Snapshot {
            schema_version: 4,
            tables: vec![
                Table { name: "bars".into(), rows: bars },
                Table { name: "model_artifacts".into(), rows: artifacts },
                Table { name: "train_jobs".into(), rows: empty },
            ],
            config,
            kv: vec![KvEntries { prefix: "feature-sets/".into(), entries }],
        }
    }

    fn sealed() -> (Vec<u8>, Manifest) {
        seal(&sample_snapshot(), "20261126T020000Z-0123abcd", "2026-11-26T02:00:00.000Z", KEY, &TEST_KDF).unwrap()
    }

    #[test]
    fn round_trip_gives_back_the_snapshot_and_manifest() {
        let (bytes, manifest) = sealed();
        let (m, snap) = open(&bytes, KEY).unwrap();
        assert_eq!(m, manifest);
        assert_eq!(snap, sample_snapshot());
        assert_eq!(m.schema_version, 4);
        assert_eq!(m.table_rows(), 3);
        let names: Vec<_> = m.parts.iter().map(|p| (p.kind, p.name.as_str(), p.rows)).collect();
        assert_eq!(
            names,
            [
                (PartKind::Table, "bars", 2),
                (PartKind::Table, "model_artifacts", 1),
                (PartKind::Table, "train_jobs", 0),
                (PartKind::Config, "config", 2),
                (PartKind::Kv, "feature-sets/", 1),
            ]
        );
        // The blob compresses: the archive is smaller than the artifact alone.
        assert!(bytes.len() < 70_000, "{} bytes", bytes.len());
    }

    #[test]
    fn two_seals_of_the_same_snapshot_differ_in_salt_nonce_and_ciphertext() {
        let (a, _) = sealed();
        let (b, _) = sealed();
        assert_ne!(a[32..60], b[32..60]);
        assert_ne!(a[HEADER_LEN..], b[HEADER_LEN..]);
    }

    #[test]
    fn wrong_key_is_told_apart() {
        let (bytes, _) = sealed();
        assert!(matches!(open(&bytes, "correct horse battery stapler"), Err(BackupError::WrongKey)));
        assert!(matches!(open(&bytes, ""), Err(BackupError::MissingKey)));
    }

    #[test]
    fn every_flipped_bit_is_refused_and_never_blamed_on_the_key() {
        let (bytes, _) = sealed();
        // Every bit of the header and of the first and last 64 bytes of ciphertext (the tag included),
        // and a stride through the middle.
        let ct = HEADER_LEN..bytes.len();
        let positions: Vec<usize> = (0..HEADER_LEN)
            .chain(ct.start..ct.start + 64)
            .chain(ct.end - 64..ct.end)
            .chain((ct.start + 64..ct.end - 64).step_by(97))
            .collect();
        for i in positions {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                match open(&bad, KEY) {
                    Err(BackupError::NotAnArchive) => assert!(i < 16, "byte {i}"),
                    Err(BackupError::UnsupportedFormat { .. }) => assert!((16..20).contains(&i), "byte {i}"),
                    Err(BackupError::Tampered(_)) => assert!(i >= 20, "byte {i}"),
                    other => panic!("byte {i} bit {bit}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn a_rewritten_header_with_a_valid_checksum_still_fails_authentication() {
        let (mut bytes, _) = sealed();
        bytes[50] ^= 1; // the nonce
        let sum = header_checksum(&bytes[..CHECKSUM_AT]);
        bytes[CHECKSUM_AT..HEADER_LEN].copy_from_slice(&sum);
        assert!(matches!(open(&bytes, KEY), Err(BackupError::Tampered(m)) if m.contains("authentication")));
    }

    #[test]
    fn truncation_anywhere_is_reported_with_lengths() {
        let (bytes, _) = sealed();
        let len = bytes.len() as u64;
        for cut in
            [0, 1, 10, 16, 19, 20, 50, HEADER_LEN - 1, HEADER_LEN, HEADER_LEN + 1, bytes.len() / 2, bytes.len() - 1]
        {
            match open(&bytes[..cut], KEY) {
                Err(BackupError::Truncated { expected, actual }) => {
                    assert_eq!(actual, cut as u64);
                    let whole = if cut < HEADER_LEN { HEADER_LEN as u64 } else { len };
                    assert_eq!(expected, whole, "cut at {cut}");
                }
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(open(&longer, KEY), Err(BackupError::Tampered(m)) if m.contains("1 bytes follow")));
    }

    #[test]
    fn other_files_and_newer_formats_are_refused() {
        assert!(matches!(open(b"PK\x03\x04 a zip file, not a backup", KEY), Err(BackupError::NotAnArchive)));
        assert!(matches!(open(b"hello", KEY), Err(BackupError::NotAnArchive)));
        let (mut bytes, _) = sealed();
        bytes[16..20].copy_from_slice(&2u32.to_le_bytes());
        match open(&bytes, KEY) {
            Err(e @ BackupError::UnsupportedFormat { found: 2, supported: 1 }) => {
                assert!(e.to_string().contains("format version 2"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parts_that_disagree_with_the_manifest_are_named() {
        // Build payloads by hand (as a buggy writer would) and check the reader names the part.
        let raw = rows::encode(&Rows { columns: vec!["a".into()], rows: vec![vec![SqlValue::Integer(1)]] }).unwrap();
        let gz = gzip(&raw).unwrap();
        let part = |rows: u64, sha256: String| PartInfo {
            name: "t".into(),
            kind: PartKind::Table,
            rows,
            sha256,
            compressed_bytes: gz.len() as u64,
            uncompressed_bytes: raw.len() as u64,
        };
        let payload = |parts: Vec<PartInfo>, body: &[u8]| {
            let m = Manifest {
                format_version: FORMAT_VERSION,
                id: "x".into(),
                created_at: "t".into(),
                schema_version: 4,
                app_version: "0".into(),
                parts,
            };
            let json = serde_json::to_vec(&m).unwrap();
            let mut p = (json.len() as u32).to_le_bytes().to_vec();
            p.extend_from_slice(&json);
            p.extend_from_slice(body);
            p
        };
        let good_sha = hex::encode(Sha256::digest(&raw));
        assert!(decode_payload(&payload(vec![part(1, good_sha.clone())], &gz)).is_ok());
        let err = decode_payload(&payload(vec![part(1, "00".repeat(32))], &gz)).unwrap_err().to_string();
        assert!(
            err.starts_with("archive part t: sha256 ") && err.contains("differs from the manifest's 0000"),
            "{err}"
        );
        let err = decode_payload(&payload(vec![part(2, good_sha.clone())], &gz)).unwrap_err().to_string();
        assert!(err.contains("1 rows decoded, the manifest says 2"), "{err}");
        let err = decode_payload(&payload(vec![part(1, good_sha.clone())], &gz[..gz.len() - 1])).unwrap_err();
        assert!(err.to_string().contains("exceeds the"), "{err}");
        let mut extra = gz.clone();
        extra.push(0);
        let err = decode_payload(&payload(vec![part(1, good_sha.clone())], &extra)).unwrap_err();
        assert!(err.to_string().contains("1 payload bytes belong to no part"), "{err}");
        let twice = vec![part(1, good_sha.clone()), part(1, good_sha)];
        let err = decode_payload(&payload(twice, &[gz.clone(), gz].concat())).unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");
    }
}
