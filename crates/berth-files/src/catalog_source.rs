//! Where a catalog comes from on disk: one file, or every `*.yaml` / `*.yml` file of a directory
//! (sorted by name, hidden files skipped, so a Kubernetes ConfigMap volume works as is). Reading,
//! size limits, and the fingerprint the server polls to notice an edit.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use berth_core::catalog::{self, Format, Loaded, Source};
use chrono::{DateTime, Utc};

/// The largest catalog file berth reads (a generated catalog of 10,000 entries is about 5 MiB).
pub const FILE_SIZE_MAX: u64 = 64 * 1024 * 1024;

/// A catalog's path and format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogSource {
    /// A file, or a directory whose catalog files are merged.
    pub path: PathBuf,
    pub format: Format,
}

/// Why the catalog files could not be read (as opposed to read and found invalid).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is larger than {FILE_SIZE_MAX} bytes", path.display())]
    TooLarge { path: PathBuf },
    #[error("{} holds no catalog file (*.yaml, *.yml)", path.display())]
    EmptyDirectory { path: PathBuf },
    /// A directory's file that is a link leading out of the directory: not read, so that a
    /// link to /etc/shadow never reaches a diagnostic.
    #[error("{} links outside the catalog directory; berth does not follow it", path.display())]
    LinksOutside { path: PathBuf },
    /// A file that is not UTF-8: a bad file, at its line and column.
    #[error("{diagnostic}")]
    NotUtf8 {
        diagnostic: berth_core::catalog::Diagnostic,
    },
}

impl SourceError {
    /// Whether the path itself does not exist (so the user probably mistyped it).
    pub fn is_not_found(&self) -> bool {
        matches!(self, SourceError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// A catalog file's name (as messages show it) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> SourceError + '_ {
    move |source| SourceError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// The catalog files under `path`: the file itself, or a directory's `*.yaml` and `*.yml`.
pub fn files(path: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let metadata = std::fs::metadata(path).map_err(read_error(path))?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for item in std::fs::read_dir(path).map_err(read_error(path))? {
        let item = item.map_err(read_error(path))?;
        let name = item.file_name();
        let name = name.to_string_lossy();
        let is_yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        if name.starts_with('.') || !is_yaml {
            continue;
        }
        let file = item.path();
        // Follows symlinks, as ConfigMap volumes are symlinks into a hidden directory. A link
        // to nothing (a removed file, a volume being swapped) is not a catalog file: skipped
        // with a warning, so that the directory's other files still make the catalog.
        let metadata = match std::fs::metadata(&file) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && is_symlink(&file) => {
                tracing::warn!(file = %file.display(), "skipping a symbolic link to nothing");
                continue;
            }
            other => other.map_err(read_error(&file))?,
        };
        if metadata.is_file() {
            if !resolves_inside(path, &file).map_err(read_error(&file))? {
                return Err(SourceError::LinksOutside { path: file });
            }
            files.push(file);
        }
    }
    if files.is_empty() {
        return Err(SourceError::EmptyDirectory {
            path: path.to_path_buf(),
        });
    }
    files.sort();
    Ok(files)
}

/// Whether `file` (perhaps a symlink, perhaps through several) ends inside `directory`. Links
/// within the directory are fine (a ConfigMap volume's files are links into its hidden
/// `..data` directory); a link out of it is not (issue 15, item 6).
pub fn resolves_inside(directory: &Path, file: &Path) -> std::io::Result<bool> {
    let directory = std::fs::canonicalize(directory)?;
    Ok(std::fs::canonicalize(file)?.starts_with(directory))
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|metadata| metadata.file_type().is_symlink())
}

/// Reads every catalog file under `path`.
pub fn read(path: &Path) -> Result<Vec<SourceFile>, SourceError> {
    files(path)?
        .into_iter()
        .map(|file| {
            let size = std::fs::metadata(&file).map_err(read_error(&file))?.len();
            if size > FILE_SIZE_MAX {
                return Err(SourceError::TooLarge { path: file });
            }
            let bytes = std::fs::read(&file).map_err(read_error(&file))?;
            let text = catalog::read::utf8_text(&file.display().to_string(), bytes)
                .map_err(|diagnostic| SourceError::NotUtf8 { diagnostic })?;
            Ok(SourceFile {
                name: file.display().to_string(),
                text,
            })
        })
        .collect()
}

/// Reads and checks the catalog at `source`.
pub fn load(source: &CatalogSource, now: DateTime<Utc>) -> Result<Loaded, SourceError> {
    let files = read(&source.path)?;
    let sources: Vec<Source<'_>> = files
        .iter()
        .map(|file| Source {
            name: &file.name,
            text: &file.text,
        })
        .collect();
    Ok(catalog::load(&sources, source.format, now))
}

/// What the poller compares: each file's path, size and modification time, or why they could
/// not be listed. Any difference means "read again".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fingerprint {
    Files(Vec<(PathBuf, u64, SystemTime)>),
    Unreadable(String),
}

pub fn fingerprint(path: &Path) -> Fingerprint {
    let stat = |file: PathBuf| -> Result<(PathBuf, u64, SystemTime), SourceError> {
        let metadata = std::fs::metadata(&file).map_err(read_error(&file))?;
        let modified = metadata.modified().map_err(read_error(&file))?;
        Ok((file, metadata.len(), modified))
    };
    let listed = files(path).and_then(|files| files.into_iter().map(stat).collect());
    match listed {
        Ok(files) => Fingerprint::Files(files),
        Err(error) => Fingerprint::Unreadable(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("berth-source-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{error}"));
        dir
    }

    /// Issue 15, item 20: a dangling `*.yaml` link does not make a valid directory "no
    /// catalog".
    #[test]
    fn a_dangling_link_in_a_directory_is_skipped() {
        let dir = scratch("dangling");
        std::fs::write(dir.join("10-a.yaml"), "images: {}\n").unwrap();
        std::os::unix::fs::symlink(dir.join("gone.yaml"), dir.join("20-gone.yaml")).unwrap();
        let names: Vec<String> = files(&dir)
            .unwrap()
            .iter()
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["10-a.yaml"]);
    }

    #[test]
    fn a_directory_yields_its_yaml_files_in_order() {
        let dir = scratch("dir");
        for name in ["20-b.yml", "10-a.yaml", ".hidden.yaml", "notes.txt"] {
            std::fs::write(dir.join(name), "images: {}\n")
                .unwrap_or_else(|error| panic!("{error}"));
        }
        std::fs::create_dir(dir.join("..data")).unwrap_or_else(|error| panic!("{error}"));
        let names: Vec<String> = files(&dir)
            .unwrap_or_else(|error| panic!("{error}"))
            .iter()
            .filter_map(|file| {
                file.file_name()
                    .map(|name| name.to_string_lossy().to_string())
            })
            .collect();
        assert_eq!(names, ["10-a.yaml", "20-b.yml"]);
        let empty = scratch("empty");
        assert!(matches!(
            files(&empty),
            Err(SourceError::EmptyDirectory { .. })
        ));
        assert!(files(&dir.join("missing.yaml")).is_err_and(|error| error.is_not_found()));
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_dir_all(empty);
    }

    /// issue 15, item 6: a `*.yaml` link to /etc/shadow had its lines printed as unknown
    /// fields (and published on /api/v1/status).
    #[test]
    fn links_out_of_the_directory_are_refused_and_links_within_it_followed() {
        let dir = scratch("links");
        let outside = scratch("links-outside");
        std::fs::write(outside.join("secret"), "root:x:0:\n").unwrap_or_else(|e| panic!("{e}"));
        // A ConfigMap volume: the file is a link into the hidden `..data` directory.
        std::fs::create_dir(dir.join("..data")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("..data/catalog.yaml"), "images: {}\n")
            .unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink("..data/catalog.yaml", dir.join("catalog.yaml"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            files(&dir).unwrap_or_else(|e| panic!("{e}")),
            [dir.join("catalog.yaml")]
        );
        std::os::unix::fs::symlink(outside.join("secret"), dir.join("shadow.yaml"))
            .unwrap_or_else(|e| panic!("{e}"));
        let error = files(&dir).err().map(|error| error.to_string());
        assert_eq!(
            error,
            Some(format!(
                "{} links outside the catalog directory; berth does not follow it",
                dir.join("shadow.yaml").display()
            ))
        );
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_dir_all(outside);
    }

    #[test]
    fn the_fingerprint_changes_with_an_edit() {
        let dir = scratch("print");
        let file = dir.join("catalog.yaml");
        std::fs::write(&file, "images: {}\n").unwrap_or_else(|error| panic!("{error}"));
        let before = fingerprint(&file);
        assert_eq!(before, fingerprint(&file));
        std::fs::write(&file, "images: {a: {image: x}}\n")
            .unwrap_or_else(|error| panic!("{error}"));
        assert_ne!(before, fingerprint(&file));
        std::fs::remove_file(&file).unwrap_or_else(|error| panic!("{error}"));
        assert!(matches!(fingerprint(&file), Fingerprint::Unreadable(_)));
        let _ = std::fs::remove_dir_all(dir);
    }
}
