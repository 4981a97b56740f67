//! `berth serve`'s configuration file, read in two stages: [`ServeFile`] is what the operator
//! typed (every problem reported at once, with file, line and column; unknown fields rejected),
//! and [`ServeSettings`] is the validated result once command-line flags and defaults are
//! applied (by the binary).
//!
//! ```yaml
//! listen: 127.0.0.1:8080
//! catalog: /etc/berth/catalog.yaml   # a file or a directory of *.yaml files
//! catalog_format: berth              # or toolforge (serve an images-v1.yaml as is)
//! catalog_poll_interval: 2s          # how often to look for an edit (ms, s or m)
//! ```
//!
//! New sections (`registries`, `store`, `webhook`) are added as one more entry in [`FIELDS`],
//! one more `Option` in [`ServeFile`] and one more arm in [`ServeFile::parse`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use berth_core::catalog::Format;
use berth_core::catalog::diagnostic::{Diagnostic, Diagnostics};
use berth_core::catalog::read::{Path, Walker};
use berth_core::catalog::yaml::Node;

use crate::catalog_source::CatalogSource;

/// The fields a config file may hold.
pub const FIELDS: &[&str] = &[
    "listen",
    "catalog",
    "catalog_format",
    "catalog_poll_interval",
];
/// Where `berth serve` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// How often the catalog's files are checked for an edit unless told otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// The shortest poll interval accepted: polling stats every file each time.
const POLL_INTERVAL_MIN: Duration = Duration::from_millis(50);

/// The config file as typed: every field optional, so flags and defaults can fill in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeFile {
    pub listen: Option<SocketAddr>,
    /// Relative paths are relative to the config file's directory (the binary resolves them).
    pub catalog: Option<PathBuf>,
    pub catalog_format: Option<Format>,
    pub catalog_poll_interval: Option<Duration>,
}

/// What `berth serve` runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSettings {
    pub listen: SocketAddr,
    pub catalog: CatalogSource,
    /// How often the catalog's files are checked for an edit (and the TLS pair, if any).
    pub poll_interval: Duration,
    /// Serve HTTPS with this certificate and key (the admission webhook needs it).
    pub tls: Option<crate::tls::TlsSettings>,
}

impl ServeFile {
    /// Parses a config file's text; `file` names it in diagnostics.
    pub fn parse(file: &str, text: &str) -> Result<ServeFile, Vec<Diagnostic>> {
        let mut diagnostics = Diagnostics::default();
        let mut walker = Walker {
            file,
            diagnostics: &mut diagnostics,
        };
        let mut config = ServeFile::default();
        let root = Path::Root;
        if let Some(node) = walker.document(text)
            && let Some(fields) = walker.fields(&node, &root, FIELDS)
        {
            for (name, field) in fields.iter() {
                let path = root.field(name);
                let value = field.value;
                match name {
                    "listen" => config.listen = parse_with(&mut walker, value, &path, listen),
                    "catalog" => {
                        config.catalog = walker.required_text(value, &path).map(PathBuf::from)
                    }
                    "catalog_format" => {
                        config.catalog_format = parse_with(&mut walker, value, &path, format)
                    }
                    "catalog_poll_interval" => {
                        config.catalog_poll_interval =
                            parse_with(&mut walker, value, &path, poll_interval);
                    }
                    other => unreachable!("field {other} is in FIELDS but not read"),
                }
            }
        }
        if diagnostics.has_errors() {
            return Err(diagnostics.into_sorted());
        }
        Ok(config)
    }
}

/// Reads a required text field with `parse`, reporting its error at the value.
fn parse_with<T>(
    walker: &mut Walker<'_>,
    node: &Node<'_>,
    path: &Path<'_>,
    parse: fn(&str) -> Result<T, String>,
) -> Option<T> {
    let text = walker.required_text(node, path)?;
    match parse(&text) {
        Ok(value) => Some(value),
        Err(message) => {
            walker.error(node.position, path, message);
            None
        }
    }
}

pub fn listen(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an address and port (127.0.0.1:8080, [::]:8080)"))
}

pub fn format(text: &str) -> Result<Format, String> {
    match text {
        "berth" => Ok(Format::Berth),
        "toolforge" => Ok(Format::Toolforge),
        _ => Err(format!(
            "unknown catalog format {text:?}; expected berth or toolforge"
        )),
    }
}

/// `500ms`, `2s`, `1m`.
pub fn poll_interval(text: &str) -> Result<Duration, String> {
    let invalid = || format!("{text:?} is not a duration (500ms, 2s, 1m)");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(invalid)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        _ => return Err(invalid()),
    };
    if duration < POLL_INTERVAL_MIN {
        return Err(format!("{text:?} is shorter than the minimum, 50ms"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expect: &str) {
        let got = match ServeFile::parse("berth.yaml", text) {
            Ok(config) => format!("{config:?}"),
            Err(diagnostics) => diagnostics
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        };
        assert_eq!(got, expect.trim(), "{text}");
    }

    #[test]
    fn a_complete_file() {
        check(
            "listen: 0.0.0.0:9000\ncatalog: catalog.d\ncatalog_format: toolforge\ncatalog_poll_interval: 500ms\n",
            r#"ServeFile { listen: Some(0.0.0.0:9000), catalog: Some("catalog.d"), catalog_format: Some(Toolforge), catalog_poll_interval: Some(500ms) }"#,
        );
        check(
            "catalog: c.yaml\n",
            r#"ServeFile { listen: None, catalog: Some("c.yaml"), catalog_format: None, catalog_poll_interval: None }"#,
        );
    }

    #[test]
    fn every_problem_at_once() {
        check(
            "
listen: localhost
catalog:
catalog_format: json
catalog_poll_interval: 2 hours
registries: {}
listen: 127.0.0.1:1
",
            "
berth.yaml:2:9: error: listen: \"localhost\" is not an address and port (127.0.0.1:8080, [::]:8080)
berth.yaml:3:8: error: catalog: expected text, found nothing
berth.yaml:4:17: error: catalog_format: unknown catalog format \"json\"; expected berth or toolforge
berth.yaml:5:24: error: catalog_poll_interval: \"2 hours\" is not a duration (500ms, 2s, 1m)
berth.yaml:6:1: error: registries: unknown field `registries`; expected one of: listen, catalog, catalog_format, catalog_poll_interval
berth.yaml:7:1: error: listen: field given twice (first at line 2, column 1)
",
        );
        check(
            "catalog_poll_interval: 10ms\n",
            "berth.yaml:1:24: error: catalog_poll_interval: \"10ms\" is shorter than the minimum, 50ms",
        );
        check("", "berth.yaml:1:1: error: the file is empty");
    }
}
