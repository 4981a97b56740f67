//! Walking a source tree (a repository checkout) for `berth usage scan`: the files a caller
//! wants, by relative path, each handed over as text, and what was skipped and why.
//!
//! Bounded and contained: `.git`, `node_modules`, `target` and `vendor` are not entered;
//! symbolic links are never followed out of the tree (a link to a file inside it is read at the
//! link's path, a link to a directory is not entered, so no loop is possible); files larger
//! than a limit and files past a count are skipped and reported. A file that cannot be read or
//! is not UTF-8 is reported, not fatal: only a root that cannot be listed stops the walk.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::catalog_source::resolves_inside;

/// The largest file read (source files that name images are small; a 1 MiB YAML file is
/// generated data).
pub const FILE_SIZE_MAX: u64 = 1024 * 1024;
/// The most files read in one walk.
pub const FILES_MAX: usize = 20_000;
/// Directories never entered: version control, and dependencies vendored or downloaded (their
/// images are their authors' business, and they are large).
pub const SKIPPED_DIRECTORIES: &[&str] = &[".git", "node_modules", "target", "vendor"];

/// How much one walk may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Files larger than this (in bytes) are skipped.
    pub file_size_max: u64,
    /// After this many files read, the walk stops and says so.
    pub files_max: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            file_size_max: FILE_SIZE_MAX,
            files_max: FILES_MAX,
        }
    }
}

/// Why a wanted file (or the rest of the tree) was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    TooLarge {
        size: u64,
        max: u64,
    },
    /// Not UTF-8 text, from this line and column on.
    NotUtf8 {
        line: usize,
        column: usize,
        message: String,
    },
    /// The operating system's reason (permission denied, ...).
    Unreadable(String),
    /// A symbolic link leading out of the tree: not followed.
    LinksOutside,
    /// A symbolic link to nothing.
    DanglingLink,
    /// The walk read `max` files and stopped here; the rest of the tree was not scanned.
    TooManyFiles {
        max: usize,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::TooLarge { size, max } => {
                write!(f, "{size} bytes, larger than the {max} bytes berth reads")
            }
            SkipReason::NotUtf8 {
                line,
                column,
                message,
            } => write!(f, "{line}:{column}: {message}"),
            SkipReason::Unreadable(reason) => write!(f, "cannot read: {reason}"),
            SkipReason::LinksOutside => {
                f.write_str("a symbolic link out of the scanned directory; not followed")
            }
            SkipReason::DanglingLink => f.write_str("a symbolic link to nothing"),
            SkipReason::TooManyFiles { max } => write!(
                f,
                "{max} files read, the most one scan reads; this and the files after it were \
                 not scanned"
            ),
        }
    }
}

/// A file or directory not read, by its path relative to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: String,
    pub reason: SkipReason,
}

/// Why the walk could not start.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("{} does not exist", path.display())]
    NotFound { path: PathBuf },
    #[error("{} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Walks the tree under `root` in path order, calling `visit(relative path, text)` for every
/// regular file whose relative path (`/`-separated) `wanted` accepts. Returns what was skipped.
pub fn walk(
    root: &Path,
    limits: &Limits,
    wanted: impl Fn(&str) -> bool,
    mut visit: impl FnMut(&str, &str),
) -> Result<Vec<Skipped>, TreeError> {
    let metadata = std::fs::metadata(root).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => TreeError::NotFound {
            path: root.to_path_buf(),
        },
        _ => TreeError::Read {
            path: root.to_path_buf(),
            source,
        },
    })?;
    if !metadata.is_dir() {
        return Err(TreeError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    let top = entries(root).map_err(|source| TreeError::Read {
        path: root.to_path_buf(),
        source,
    })?;
    let mut skipped = Vec::new();
    let mut read = 0;
    // Depth first, each directory's entries in name order: the stack holds them reversed.
    let mut stack: Vec<(String, PathBuf)> = top.into_iter().rev().collect();
    while let Some((relative, path)) = stack.pop() {
        let skip = |reason| Skipped {
            path: relative.clone(),
            reason,
        };
        let file_type = match std::fs::symlink_metadata(&path) {
            Ok(metadata) => metadata.file_type(),
            Err(error) => {
                skipped.push(skip(SkipReason::Unreadable(error.to_string())));
                continue;
            }
        };
        if file_type.is_dir() {
            let name = relative.rsplit('/').next().unwrap_or_default();
            if SKIPPED_DIRECTORIES.contains(&name) {
                continue;
            }
            match entries(&path) {
                Ok(children) => stack.extend(
                    children
                        .into_iter()
                        .rev()
                        .map(|(name, path)| (format!("{relative}/{name}"), path)),
                ),
                Err(error) => skipped.push(skip(SkipReason::Unreadable(error.to_string()))),
            }
            continue;
        }
        if file_type.is_symlink() {
            // The target's type, following the link (and any links it leads to).
            match std::fs::metadata(&path) {
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    if wanted(&relative) {
                        skipped.push(skip(SkipReason::DanglingLink));
                    }
                    continue;
                }
                Err(error) => {
                    skipped.push(skip(SkipReason::Unreadable(error.to_string())));
                    continue;
                }
                Ok(target) => {
                    let inside = resolves_inside(root, &path).unwrap_or(false);
                    if target.is_dir() {
                        // Never entered: a link inside names files the walk reaches anyway.
                        if !inside {
                            skipped.push(skip(SkipReason::LinksOutside));
                        }
                        continue;
                    }
                    if !target.is_file() || !wanted(&relative) {
                        continue;
                    }
                    if !inside {
                        skipped.push(skip(SkipReason::LinksOutside));
                        continue;
                    }
                }
            }
        } else if !file_type.is_file() || !wanted(&relative) {
            // Sockets, pipes and devices are never opened (a pipe would block the walk).
            continue;
        }
        if read == limits.files_max {
            skipped.push(skip(SkipReason::TooManyFiles {
                max: limits.files_max,
            }));
            break;
        }
        read += 1;
        match read_text(&path, &relative, limits.file_size_max) {
            Ok(text) => visit(&relative, &text),
            Err(reason) => skipped.push(skip(reason)),
        }
    }
    Ok(skipped)
}

/// A directory's entries as (name, path), sorted by name.
fn entries(directory: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(directory)? {
        let entry = entry?;
        entries.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.path(),
        ));
    }
    entries.sort();
    Ok(entries)
}

/// The file's text, at most `max` bytes of it (a file that grows while read is still refused).
fn read_text(path: &Path, relative: &str, max: u64) -> Result<String, SkipReason> {
    let unreadable = |error: std::io::Error| SkipReason::Unreadable(error.to_string());
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let size = file.metadata().map_err(unreadable)?.len();
    if size > max {
        return Err(SkipReason::TooLarge { size, max });
    }
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > max {
        return Err(SkipReason::TooLarge {
            size: bytes.len() as u64,
            max,
        });
    }
    berth_core::catalog::read::utf8_text(relative, bytes).map_err(|diagnostic| {
        SkipReason::NotUtf8 {
            line: diagnostic.line,
            column: diagnostic.column,
            message: diagnostic.message,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("berth-tree-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{error}"));
        dir
    }

    fn write(dir: &Path, relative: &str, content: &[u8]) {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|error| panic!("{error}"));
        }
        std::fs::write(path, content).unwrap_or_else(|error| panic!("{error}"));
    }

    /// `path: text` for each file visited and `path: reason` for each skipped.
    fn run(dir: &Path, limits: &Limits) -> (Vec<String>, Vec<String>) {
        let mut visited = Vec::new();
        let skipped = walk(
            dir,
            limits,
            |path| !path.ends_with(".md"),
            |path, text| visited.push(format!("{path}: {}", text.trim_end())),
        )
        .unwrap_or_else(|error| panic!("{error}"));
        let skipped = skipped
            .iter()
            .map(|skipped| format!("{}: {}", skipped.path, skipped.reason))
            .collect();
        (visited, skipped)
    }

    #[test]
    fn walks_in_path_order_skipping_dependencies_and_unwanted_files() {
        let dir = scratch("order");
        write(&dir, "b/Dockerfile", b"b");
        write(&dir, "a.yaml", b"a");
        write(&dir, "a/z/deep.yaml", b"deep");
        write(&dir, ".github/workflows/ci.yml", b"ci");
        for skipped in SKIPPED_DIRECTORIES {
            write(&dir, &format!("{skipped}/Dockerfile"), b"no");
            write(&dir, &format!("src/{skipped}/x.yaml"), b"no");
        }
        // Not wanted, so not even read: its bytes are no concern.
        write(&dir, "README.md", b"\xff\xfe");
        let (visited, skipped) = run(&dir, &Limits::default());
        assert_eq!(
            visited,
            [
                ".github/workflows/ci.yml: ci",
                "a/z/deep.yaml: deep",
                "a.yaml: a",
                "b/Dockerfile: b"
            ]
        );
        assert_eq!(skipped, Vec::<String>::new());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn large_non_utf8_and_excess_files_are_reported_not_fatal() {
        let dir = scratch("limits");
        write(&dir, "1-big.yaml", &[b'a'; 101]);
        write(&dir, "2-latin1.yaml", b"image: caf\xe9\n");
        write(&dir, "3-ok.yaml", b"ok");
        write(&dir, "4-ok.yaml", b"ok");
        write(&dir, "5-never.yaml", b"never");
        let limits = Limits {
            file_size_max: 100,
            files_max: 4,
        };
        let (visited, skipped) = run(&dir, &limits);
        assert_eq!(visited, ["3-ok.yaml: ok", "4-ok.yaml: ok"]);
        assert_eq!(
            skipped,
            [
                "1-big.yaml: 101 bytes, larger than the 100 bytes berth reads",
                "2-latin1.yaml: 1:11: not UTF-8 text (byte 0xe9); save the file as UTF-8",
                "5-never.yaml: 4 files read, the most one scan reads; this and the files after \
                 it were not scanned",
            ]
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn links_are_never_followed_out_of_the_tree() {
        let dir = scratch("links");
        let outside = scratch("links-outside");
        write(&outside, "secret.yaml", b"root:x:0:");
        write(&outside, "sub/Dockerfile", b"FROM outside");
        write(&dir, "real/Dockerfile", b"FROM inside");
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, dir.join(name)).unwrap_or_else(|e| panic!("{e}"))
        };
        link(&outside.join("secret.yaml"), "shadow.yaml");
        link(&outside.join("sub"), "out");
        link(&dir.join("real"), "loop");
        link(&dir, "real/up");
        link(&dir.join("real/Dockerfile"), "Dockerfile");
        link(&dir.join("gone.yaml"), "dangling.yaml");
        link(&dir.join("gone.md"), "dangling.md");
        let (visited, skipped) = run(&dir, &Limits::default());
        assert_eq!(
            visited,
            ["Dockerfile: FROM inside", "real/Dockerfile: FROM inside"]
        );
        assert_eq!(
            skipped,
            [
                "dangling.yaml: a symbolic link to nothing",
                "out: a symbolic link out of the scanned directory; not followed",
                "shadow.yaml: a symbolic link out of the scanned directory; not followed",
            ]
        );
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_dir_all(outside);
    }

    #[test]
    fn a_root_that_is_no_directory_is_an_error() {
        let dir = scratch("root");
        write(&dir, "file.yaml", b"x");
        let error = |path: &Path| {
            walk(path, &Limits::default(), |_| true, |_, _| {})
                .err()
                .map(|error| error.to_string())
        };
        assert_eq!(
            error(&dir.join("missing")),
            Some(format!("{} does not exist", dir.join("missing").display()))
        );
        assert_eq!(
            error(&dir.join("file.yaml")),
            Some(format!(
                "{} is not a directory",
                dir.join("file.yaml").display()
            ))
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
