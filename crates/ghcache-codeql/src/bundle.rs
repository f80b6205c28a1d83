//! The SARIF files of one analysis, packed into one compressed,
//! content-addressed blob. Unpacking refuses anything that is not a plain
//! file name or not SARIF, and bounds what it inflates.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use bytes::Bytes;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use ghcache_core::ContentId;

/// Largest packed bundle (fits one mesh message with room to spare).
pub const MAX_BUNDLE_BYTES: usize = 12 << 20;
/// Largest total of unpacked SARIF (a bound against compression bombs).
pub const MAX_UNPACKED_BYTES: u64 = 512 << 20;
/// Most files in one bundle.
pub const MAX_FILES: usize = 256;
const MAGIC: &[u8; 8] = b"GHCQLSB1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("`{0}` is not a plain file name (no directories, `..`, or control characters)")]
    UnsafeName(String),
    #[error("{name} is not SARIF: {reason}")]
    NotSarif { name: String, reason: String },
    #[error("no .sarif files in {0}")]
    Empty(String),
    #[error("the bundle does not match its content id {expected}")]
    CidMismatch { expected: String },
    #[error("the bundle is corrupt: {0}")]
    Corrupt(String),
    #[error("the SARIF is too large: {0} bytes packed (at most {MAX_BUNDLE_BYTES})")]
    TooLarge(usize),
    #[error("{0}")]
    Io(String),
}

/// One SARIF file: its name in the SARIF directory, its bytes, and its
/// results per level (counted once, when its bytes were checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SarifFile {
    name: String,
    contents: Vec<u8>,
    counts: BTreeMap<String, u64>,
}

impl SarifFile {
    /// A file under a plain name whose bytes are SARIF; refused otherwise.
    pub fn new(name: impl Into<String>, contents: Vec<u8>) -> Result<SarifFile, BundleError> {
        let name = name.into();
        check_name(&name)?;
        let counts = count_results(&name, &contents)?;
        Ok(SarifFile {
            name,
            contents,
            counts,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn contents(&self) -> &[u8] {
        &self.contents
    }
}

/// The files of one analysis: at least one, at most [`MAX_FILES`], names
/// distinct, in name order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SarifBundle {
    files: Vec<SarifFile>,
}

/// A name safe to join to the SARIF directory: one component, no `..`.
pub fn check_name(name: &str) -> Result<(), BundleError> {
    let unsafe_name = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > 255
        || name.contains(['/', '\\', ':'])
        || name.chars().any(char::is_control);
    if unsafe_name {
        return Err(BundleError::UnsafeName(name.to_owned()));
    }
    Ok(())
}

/// Counts results per level over every run (`warning` when a result has no
/// level, SARIF's default); an error when the bytes are not SARIF.
pub fn count_results(name: &str, contents: &[u8]) -> Result<BTreeMap<String, u64>, BundleError> {
    #[derive(serde::Deserialize)]
    struct Log {
        runs: Vec<Run>,
    }
    #[derive(serde::Deserialize)]
    struct Run {
        #[serde(default)]
        results: Vec<ResultLevel>,
    }
    #[derive(serde::Deserialize)]
    struct ResultLevel {
        level: Option<String>,
    }
    let log: Log = serde_json::from_slice(contents).map_err(|e| BundleError::NotSarif {
        name: name.to_owned(),
        reason: e.to_string(),
    })?;
    let mut counts = BTreeMap::new();
    for result in log.runs.iter().flat_map(|r| &r.results) {
        let level = result.level.as_deref().unwrap_or("warning").to_owned();
        *counts.entry(level).or_insert(0) += 1;
    }
    Ok(counts)
}

impl SarifBundle {
    /// Reads every `*.sarif` file directly in `dir` (in name order).
    pub fn read_dir(dir: &Path) -> Result<SarifBundle, BundleError> {
        let io = |e: std::io::Error| BundleError::Io(format!("{}: {e}", dir.display()));
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".sarif") || !entry.file_type().map_err(io)?.is_file() {
                continue;
            }
            let contents = std::fs::read(entry.path()).map_err(io)?;
            files.push(SarifFile::new(name, contents)?);
        }
        if files.is_empty() {
            return Err(BundleError::Empty(dir.display().to_string()));
        }
        SarifBundle::new(files)
    }

    /// The bundle of `files` (each already checked by [`SarifFile::new`]):
    /// refused when empty, over [`MAX_FILES`] or with a name twice.
    pub fn new(mut files: Vec<SarifFile>) -> Result<SarifBundle, BundleError> {
        if files.is_empty() || files.len() > MAX_FILES {
            return Err(BundleError::Corrupt(format!(
                "{} files (a bundle holds 1 to {MAX_FILES})",
                files.len()
            )));
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        // Case-blind: restored on a case-insensitive file system, `a.sarif`
        // and `A.sarif` are one file.
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = files
            .iter()
            .find(|f| !seen.insert(f.name.to_ascii_lowercase()))
        {
            return Err(BundleError::Corrupt(format!(
                "{} appears twice (letter case aside)",
                twice.name
            )));
        }
        Ok(SarifBundle { files })
    }

    pub fn files(&self) -> &[SarifFile] {
        &self.files
    }

    /// Result counts per level, summed over the files.
    pub fn result_counts(&self) -> BTreeMap<String, u64> {
        let mut total = BTreeMap::new();
        for (level, n) in self.files.iter().flat_map(|file| &file.counts) {
            *total.entry(level.clone()).or_insert(0) += n;
        }
        total
    }

    /// Packs the files: a small framed format, gzip-compressed.
    pub fn pack(&self) -> Result<Bytes, BundleError> {
        pack_files(
            self.files
                .iter()
                .map(|f| (f.name.as_str(), f.contents.as_slice())),
        )
    }

    /// Checks `packed` against `cid`, then unpacks and validates it: every
    /// name plain, every file SARIF, the total bounded.
    pub fn unpack_verified(packed: &[u8], cid: &ContentId) -> Result<SarifBundle, BundleError> {
        if !cid.verify(packed) {
            return Err(BundleError::CidMismatch {
                expected: cid.to_string(),
            });
        }
        Self::unpack(packed)
    }

    fn unpack(packed: &[u8]) -> Result<SarifBundle, BundleError> {
        let corrupt = |what: &str| BundleError::Corrupt(what.to_owned());
        let mut reader = GzDecoder::new(packed).take(MAX_UNPACKED_BYTES + 1);
        let mut magic = [0u8; 8];
        reader
            .read_exact(&mut magic)
            .map_err(|_| corrupt("truncated header"))?;
        if &magic != MAGIC {
            return Err(corrupt("not a ghcache SARIF bundle"));
        }
        let count = read_u32(&mut reader)? as usize;
        if count == 0 || count > MAX_FILES {
            return Err(corrupt("bad file count"));
        }
        let mut files = Vec::with_capacity(count);
        let mut total = 0u64;
        for _ in 0..count {
            let name_len = read_u32(&mut reader)? as usize;
            if name_len > 255 {
                return Err(corrupt("file name too long"));
            }
            let mut name = vec![0u8; name_len];
            reader
                .read_exact(&mut name)
                .map_err(|_| corrupt("truncated name"))?;
            let name = String::from_utf8(name).map_err(|_| corrupt("file name not UTF-8"))?;
            // Checked before its bytes are inflated.
            check_name(&name)?;
            let len = read_u64(&mut reader)?;
            total = total.saturating_add(len);
            if total > MAX_UNPACKED_BYTES {
                return Err(corrupt("unpacks past the size limit"));
            }
            let mut contents = Vec::new();
            (&mut reader)
                .take(len)
                .read_to_end(&mut contents)
                .map_err(|_| corrupt("truncated file"))?;
            if contents.len() as u64 != len {
                return Err(corrupt("truncated file"));
            }
            files.push(SarifFile::new(name, contents)?);
        }
        SarifBundle::new(files)
    }

    /// Writes the files into `dir` (created if needed), replacing files of
    /// the same names.
    pub fn restore(&self, dir: &Path) -> Result<(), BundleError> {
        let io = |e: std::io::Error| BundleError::Io(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        for file in &self.files {
            check_name(&file.name)?;
            std::fs::write(dir.join(&file.name), &file.contents).map_err(io)?;
        }
        Ok(())
    }
}

/// Packs `(name, contents)` pairs as given, checking nothing but the
/// packed size ([`SarifBundle::pack`] packs checked files; tests pack
/// what a hostile member might send).
pub(crate) fn pack_files<'a>(
    files: impl ExactSizeIterator<Item = (&'a str, &'a [u8])>,
) -> Result<Bytes, BundleError> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    let io = |e: std::io::Error| BundleError::Io(e.to_string());
    encoder.write_all(MAGIC).map_err(io)?;
    encoder
        .write_all(&(files.len() as u32).to_be_bytes())
        .map_err(io)?;
    for (name, contents) in files {
        encoder
            .write_all(&(name.len() as u32).to_be_bytes())
            .map_err(io)?;
        encoder.write_all(name.as_bytes()).map_err(io)?;
        encoder
            .write_all(&(contents.len() as u64).to_be_bytes())
            .map_err(io)?;
        encoder.write_all(contents).map_err(io)?;
    }
    let packed = encoder.finish().map_err(io)?;
    if packed.len() > MAX_BUNDLE_BYTES {
        return Err(BundleError::TooLarge(packed.len()));
    }
    Ok(Bytes::from(packed))
}

fn read_u32(reader: &mut impl Read) -> Result<u32, BundleError> {
    let mut b = [0u8; 4];
    reader
        .read_exact(&mut b)
        .map_err(|_| BundleError::Corrupt("truncated".into()))?;
    Ok(u32::from_be_bytes(b))
}

fn read_u64(reader: &mut impl Read) -> Result<u64, BundleError> {
    let mut b = [0u8; 8];
    reader
        .read_exact(&mut b)
        .map_err(|_| BundleError::Corrupt("truncated".into()))?;
    Ok(u64::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SARIF: &str =
        r#"{"version":"2.1.0","runs":[{"results":[{"level":"error"},{},{"level":"note"}]}]}"#;

    /// Built without the checks: some tests pack what `new` refuses.
    fn bundle(name: &str) -> SarifBundle {
        SarifBundle {
            files: vec![SarifFile {
                name: name.into(),
                contents: SARIF.as_bytes().to_vec(),
                counts: count_results(name, SARIF.as_bytes()).unwrap_or_default(),
            }],
        }
    }

    #[test]
    fn packs_and_unpacks_with_counts() {
        let b = bundle("python.sarif");
        let packed = b.pack().expect("pack");
        let back = SarifBundle::unpack_verified(&packed, &ContentId::of(&packed)).expect("unpack");
        assert_eq!(back, b);
        let counts = back.result_counts();
        assert_eq!(counts.get("error"), Some(&1));
        assert_eq!(counts.get("warning"), Some(&1));
        assert_eq!(counts.get("note"), Some(&1));
    }

    #[test]
    fn refuses_traversal_in_stored_names() {
        for name in ["../evil.sarif", "a/b.sarif", "..", "c:\\x.sarif", ""] {
            let packed = bundle(name).pack().expect("pack");
            let err = SarifBundle::unpack_verified(&packed, &ContentId::of(&packed))
                .expect_err("unsafe name");
            assert!(matches!(err, BundleError::UnsafeName(_)), "{name}: {err}");
        }
    }

    #[test]
    fn refuses_bytes_that_do_not_match_the_cid() {
        let packed = bundle("a.sarif").pack().expect("pack");
        let other = bundle("b.sarif").pack().expect("pack");
        assert!(matches!(
            SarifBundle::unpack_verified(&packed, &ContentId::of(&other)),
            Err(BundleError::CidMismatch { .. })
        ));
    }

    #[test]
    fn refuses_corrupt_and_non_sarif_contents() {
        let garbage = b"not gzip at all".to_vec();
        assert!(matches!(
            SarifBundle::unpack_verified(&garbage, &ContentId::of(&garbage)),
            Err(BundleError::Corrupt(_))
        ));
        let mut b = bundle("a.sarif");
        b.files[0].contents = b"{\"runs\": 3}".to_vec();
        let packed = b.pack().expect("pack");
        assert!(matches!(
            SarifBundle::unpack_verified(&packed, &ContentId::of(&packed)),
            Err(BundleError::NotSarif { .. })
        ));
    }

    #[test]
    fn a_file_is_checked_once_and_its_counts_kept() {
        assert!(matches!(
            SarifFile::new("../a.sarif", SARIF.as_bytes().to_vec()),
            Err(BundleError::UnsafeName(_))
        ));
        assert!(matches!(
            SarifFile::new("a.sarif", b"{}".to_vec()),
            Err(BundleError::NotSarif { .. })
        ));
        let one = || SarifFile::new("a.sarif", SARIF.as_bytes().to_vec()).expect("sarif");
        let two = SarifFile::new("b.sarif", SARIF.as_bytes().to_vec()).expect("sarif");
        let bundle = SarifBundle::new(vec![two.clone(), one()]).expect("bundle");
        let names: Vec<&str> = bundle.files().iter().map(SarifFile::name).collect();
        assert_eq!(names, ["a.sarif", "b.sarif"]);
        assert_eq!(bundle.result_counts().get("error"), Some(&2));
        assert_eq!(bundle.result_counts().get("warning"), Some(&2));
        assert!(matches!(
            SarifBundle::new(vec![one(), two, one()]),
            Err(BundleError::Corrupt(_))
        ));
        let upper = SarifFile::new("A.SARIF", SARIF.as_bytes().to_vec()).expect("sarif");
        assert!(matches!(
            SarifBundle::new(vec![one(), upper]),
            Err(BundleError::Corrupt(_))
        ));
        assert!(matches!(
            SarifBundle::new(Vec::new()),
            Err(BundleError::Corrupt(_))
        ));
    }

    #[test]
    fn refuses_a_packed_bundle_naming_a_file_twice() {
        let mut b = bundle("a.sarif");
        b.files.push(b.files[0].clone());
        let packed = b.pack().expect("pack");
        let err = SarifBundle::unpack_verified(&packed, &ContentId::of(&packed))
            .expect_err("a name twice");
        assert!(matches!(err, BundleError::Corrupt(_)), "{err}");
    }
}
