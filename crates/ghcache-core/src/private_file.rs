//! Small files only this user may read (keys), created atomically.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Why a private file could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is accessible by group or others (mode {mode:o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{} is {len} bytes, more than the {max} a key file may hold", path.display())]
    TooLarge { path: PathBuf, len: u64, max: u64 },
}

/// Reads the file at `path` (refusing one readable by group or others, or
/// longer than `max_len`), or creates it with `contents()`: mode 0600, temp
/// file + fsync + hard link, so a crash never leaves half a file and two
/// racing creators agree on one content. Returns (bytes, created).
pub fn read_or_create(
    path: &Path,
    max_len: u64,
    contents: impl FnOnce() -> Vec<u8>,
) -> Result<(Vec<u8>, bool), PrivateFileError> {
    let io = |source| PrivateFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::File::open(path) {
        Ok(f) => read_existing(path, f, max_len).map(|b| (b, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let bytes = contents();
            let tmp = tmp_path(path);
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let written = opts.open(&tmp).and_then(|mut f| {
                f.write_all(&bytes)?;
                f.sync_all()
            });
            if let Err(e) = written {
                let _ = std::fs::remove_file(&tmp);
                return Err(io(e));
            }
            // hard_link fails if another process created the file first;
            // then both must use that one, so re-read it.
            let linked = std::fs::hard_link(&tmp, path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => Ok((bytes, true)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let f = std::fs::File::open(path).map_err(io)?;
                    read_existing(path, f, max_len).map(|b| (b, false))
                }
                Err(e) => Err(io(e)),
            }
        }
        Err(e) => Err(io(e)),
    }
}

fn read_existing(path: &Path, f: std::fs::File, max_len: u64) -> Result<Vec<u8>, PrivateFileError> {
    let io = |source| PrivateFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let md = f.metadata().map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = md.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(PrivateFileError::Permissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    if md.len() > max_len {
        return Err(PrivateFileError::TooLarge {
            path: path.to_path_buf(),
            len: md.len(),
            max: max_len,
        });
    }
    let mut buf = Vec::with_capacity(md.len() as usize);
    f.take(max_len).read_to_end(&mut buf).map_err(io)?;
    Ok(buf)
}

/// Creates `dir` and any missing parents with mode 0700 (before the umask),
/// for directories that hold keys or cached private responses. An existing
/// directory is left as it is: see [`wider_than_private`].
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// The permission bits of `path` when group or others have any access to
/// it; `None` when only the owner has (always `None` off Unix).
pub fn wider_than_private(path: &Path) -> std::io::Result<Option<u32>> {
    let md = std::fs::metadata(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = md.permissions().mode() & 0o777;
        Ok((mode & 0o077 != 0).then_some(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = md;
        Ok(None)
    }
}

/// Creates the file at `path` empty with mode 0600 if it does not exist, so
/// that a library which then opens it (redb) never makes it readable by
/// others; an existing file wider than 0600 is narrowed to it. Returns the
/// mode it had when it was narrowed.
pub fn make_private_file(path: &Path) -> std::io::Result<Option<u32>> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(path) {
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let wide = wider_than_private(path)?;
    #[cfg(unix)]
    if wide.is_some() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(wide)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_read_and_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("deep/dir/key");
        let (a, created) = read_or_create(&path, 64, || b"first".to_vec()).expect("create");
        assert!(created);
        let (b, created) = read_or_create(&path, 64, || b"second".to_vec()).expect("read");
        assert_eq!(
            (a.as_slice(), b.as_slice(), created),
            (&b"first"[..], &b"first"[..], false)
        );
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .collect();
        assert_eq!(names.len(), 1);
        let err = read_or_create(&path, 3, Vec::new).expect_err("too large");
        assert!(
            matches!(err, PrivateFileError::TooLarge { len: 5, .. }),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn private_dirs_and_files() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().expect("tempdir");
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        let dir = root.path().join("a/state");
        create_private_dir(&dir).expect("create");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);
        assert_eq!(wider_than_private(&dir).expect("check"), None);
        // An existing directory is reported, not changed.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        create_private_dir(&dir).expect("exists");
        assert_eq!(wider_than_private(&dir).expect("check"), Some(0o755));
        // Files: created 0600, narrowed to 0600, contents kept.
        let file = dir.join("store.redb");
        assert_eq!(make_private_file(&file).expect("create"), None);
        assert_eq!(mode(&file), 0o600);
        std::fs::write(&file, b"data").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(make_private_file(&file).expect("narrow"), Some(0o644));
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::read(&file).expect("read"), b"data");
    }
}
