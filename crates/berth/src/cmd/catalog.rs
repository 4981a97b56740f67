//! `berth catalog`: check, list, show, resolve, which, export, import and schema, over a catalog
//! file or directory. Text for people, or `--json`: the very JSON the HTTP API answers (both
//! serialize the catalog's answer structs; one shape, one code path).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use berth_core::ImageRef;
use berth_core::catalog::{
    self, Catalog, Diagnostic, EntryView, Format, LifecycleView, Listing, Resolution, ResolveError,
    State, Which,
};
use berth_files::catalog_source::{self, CatalogSource, SourceError};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::environment::Environment;
use crate::exit::{NEGATIVE, usage};

/// Where the catalog is when neither `--catalog` nor `BERTH_CATALOG` says.
const DEFAULT_CATALOG: &str = "catalog.yaml";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The catalog: a file, or a directory whose *.yaml files are merged
    /// (default: $BERTH_CATALOG, then ./catalog.yaml).
    #[arg(long, global = true, value_name = "PATH")]
    pub catalog: Option<PathBuf>,
    /// The catalog's format: berth's, or Toolforge's images-v1.yaml read as it is.
    #[arg(long, global = true, value_enum, default_value_t = SourceFormat::Berth)]
    pub catalog_format: SourceFormat,
    /// Answer for this moment instead of now: RFC 3339 (2027-01-01T09:30:00Z) or a day
    /// (2027-01-01, meaning 00:00 UTC). Effective states follow from the catalog's dates.
    #[arg(long, global = true, value_name = "MOMENT")]
    pub now: Option<String>,
    /// Print JSON (the HTTP API's answer) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceFormat {
    Berth,
    Toolforge,
}

impl From<SourceFormat> for Format {
    fn from(format: SourceFormat) -> Format {
        match format {
            SourceFormat::Berth => Format::Berth,
            SourceFormat::Toolforge => Format::Toolforge,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// berth's catalog format.
    Berth,
    /// Toolforge's images-v1.yaml, states as of --now.
    Toolforge,
    /// A Kubernetes ConfigMap holding the Toolforge file under `images-v1.yaml`.
    Configmap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    /// Toolforge's images-v1.yaml.
    Toolforge,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Report every error and warning as file:line:column; exit 1 when there is an error.
    Check,
    /// List canonical names, stable first, with notices.
    List {
        /// Include deprecated and eol entries.
        #[arg(long)]
        all: bool,
    },
    /// Everything about one entry (by canonical name or alias).
    Show {
        /// A catalog name or alias.
        name: String,
    },
    /// The image reference a name or alias runs.
    Resolve {
        /// A catalog name or alias.
        name: String,
        /// The consumer's variant (jobs, webservice, ...); without one, the default image.
        #[arg(long)]
        variant: Option<String>,
        /// The channel (tag) to resolve to (default: latest when published, else the first).
        #[arg(long)]
        channel: Option<String>,
    },
    /// The canonical name and variant of an image reference (any spelling, tag or digest).
    Which {
        /// An image reference as a workload writes it (`python:3.11`, `registry/repo@sha256:...`).
        #[arg(value_name = "REF")]
        reference: String,
    },
    /// Write the catalog out: berth's format, Toolforge's images-v1.yaml, or a ConfigMap.
    Export {
        /// What to write: berth's catalog, Toolforge's images-v1.yaml, or a ConfigMap holding it.
        #[arg(long, value_enum, default_value_t = ExportFormat::Berth)]
        format: ExportFormat,
        /// The ConfigMap's name.
        #[arg(long, default_value = "image-config")]
        name: String,
        /// The ConfigMap's namespace (none: the manifest leaves it to kubectl).
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Convert another format's file into a berth catalog (printed).
    Import {
        /// The file's format.
        #[arg(long, value_enum)]
        format: ImportFormat,
        /// The file to convert.
        file: PathBuf,
    },
    /// Print the catalog's JSON Schema (for editors).
    Schema,
}

pub fn exec(args: Args, env: &Environment) -> anyhow::Result<ExitCode> {
    let now = match &args.now {
        Some(text) => {
            catalog::parse_moment(text).map_err(|error| usage(format!("--now: {error}")))?
        }
        None => Utc::now(),
    };
    match &args.command {
        Command::Schema => {
            crate::cmd::print_text(catalog::SCHEMA_JSON);
            return Ok(ExitCode::SUCCESS);
        }
        Command::Import { format, file } => return import(*format, file, now),
        _ => {}
    }
    let source = CatalogSource {
        path: catalog_path(args.catalog.clone(), env),
        format: args.catalog_format.into(),
    };
    let loaded = read(&source, now)?;
    if let Command::Check = args.command {
        return check(
            &source,
            &loaded.diagnostics,
            loaded.catalog.as_ref(),
            args.json,
        );
    }
    let Some(catalog) = loaded.catalog else {
        print_diagnostics_to_stderr(&loaded.diagnostics);
        let errors = loaded.errors().count();
        return Err(usage(format!(
            "{}: the catalog has {errors} error{}; `berth catalog check` lists them",
            source.path.display(),
            plural(errors)
        )));
    };
    let json = args.json;
    match args.command {
        Command::List { all } => {
            let listing = catalog.list(all, now);
            if json {
                crate::cmd::print_json(&listing)?;
            } else {
                crate::cmd::print_text(&listing_text(&listing));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { name } => answer(catalog.show(&name, now), json, show_text),
        Command::Resolve {
            name,
            variant,
            channel,
        } => {
            let resolution = catalog.resolve(&name, variant.as_deref(), channel.as_deref(), now);
            if !json && let Ok(found) = &resolution {
                notice_to_stderr(&found.name, &found.lifecycle);
            }
            answer(resolution, json, |found: &Resolution| {
                format!("{}\n", found.image)
            })
        }
        Command::Which { reference } => {
            let reference =
                ImageRef::parse(&reference).map_err(|error| usage(error.to_string()))?;
            let which = catalog.which(&reference, now);
            if !json && let Ok(found) = &which {
                notice_to_stderr(&found.name, &found.lifecycle);
            }
            answer(which, json, which_text)
        }
        Command::Export {
            format,
            name,
            namespace,
        } => export(&catalog, format, &name, namespace.as_deref(), now),
        Command::Check | Command::Import { .. } | Command::Schema => {
            unreachable!("handled before the catalog is needed")
        }
    }
}

/// `--catalog`, else `BERTH_CATALOG`, else `./catalog.yaml`.
pub fn catalog_path(flag: Option<PathBuf>, env: &Environment) -> PathBuf {
    flag.or_else(|| env.get("BERTH_CATALOG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CATALOG))
}

/// Reads a catalog that must be valid (for commands that use one rather than check it): its
/// errors are printed and make a usage error.
pub fn read_valid(source: &CatalogSource, now: DateTime<Utc>) -> anyhow::Result<Catalog> {
    let loaded = read(source, now)?;
    match loaded.catalog {
        Some(catalog) => Ok(catalog),
        None => {
            print_diagnostics_to_stderr(&loaded.diagnostics);
            Err(usage(format!(
                "the catalog {} has errors (see `berth catalog check`)",
                source.path.display()
            )))
        }
    }
}

/// Reads the catalog's files: a missing or unusable path is the user's mistake, an I/O error
/// on a file that exists is a fault.
pub(crate) fn read(source: &CatalogSource, now: DateTime<Utc>) -> anyhow::Result<catalog::Loaded> {
    match catalog_source::load(source, now) {
        Ok(loaded) => Ok(loaded),
        Err(error) if error.is_not_found() => Err(usage(format!(
            "no catalog at {} (give --catalog PATH or set BERTH_CATALOG)",
            source.path.display()
        ))),
        Err(
            error @ (SourceError::EmptyDirectory { .. }
            | SourceError::TooLarge { .. }
            | SourceError::NotUtf8 { .. }
            | SourceError::LinksOutside { .. }),
        ) => Err(usage(error.to_string())),
        Err(error) => Err(anyhow::Error::new(error)),
    }
}

/// `--json`'s body for `check`.
#[derive(Debug, Serialize)]
struct CheckReport<'a> {
    ok: bool,
    entries: usize,
    errors: usize,
    warnings: usize,
    diagnostics: &'a [Diagnostic],
}

fn check(
    source: &CatalogSource,
    diagnostics: &[Diagnostic],
    catalog: Option<&Catalog>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    let entries = catalog.map_or(0, Catalog::len);
    if json {
        crate::cmd::print_json(&CheckReport {
            ok: errors == 0,
            entries,
            errors,
            warnings,
            diagnostics,
        })?;
    } else {
        let mut text: String = diagnostics.iter().map(|d| format!("{d}\n")).collect();
        let images = match catalog {
            Some(_) => format!("{entries} image{}, ", plural(entries)),
            None => String::new(),
        };
        text.push_str(&format!(
            "{}: {images}{errors} error{}, {warnings} warning{}\n",
            source.path.display(),
            plural(errors),
            plural(warnings)
        ));
        crate::cmd::print_text(&text);
    }
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(NEGATIVE)
    })
}

/// Prints an answer (JSON or text) or the catalog's "no" (JSON on stdout, or one line on
/// stderr) with exit code 1.
fn answer<T: Serialize>(
    result: Result<T, ResolveError>,
    json: bool,
    text: impl Fn(&T) -> String,
) -> anyhow::Result<ExitCode> {
    match result {
        Ok(found) if json => {
            crate::cmd::print_json(&found)?;
            Ok(ExitCode::SUCCESS)
        }
        Ok(found) => {
            crate::cmd::print_text(&text(&found));
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            if json {
                crate::cmd::print_json(&error)?;
            } else {
                eprintln!("berth: {error}");
            }
            Ok(ExitCode::from(NEGATIVE))
        }
    }
}

fn notice_to_stderr(name: &str, lifecycle: &LifecycleView) {
    if let Some(notice) = &lifecycle.notice {
        eprintln!("berth: {name}: {notice}");
    }
}

fn print_diagnostics_to_stderr(diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics.iter().filter(|d| d.is_error()) {
        eprintln!("{diagnostic}");
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

fn state_text(lifecycle: &LifecycleView) -> String {
    match lifecycle.since {
        Some(since) => format!("{} since {since}", lifecycle.state),
        None => lifecycle.state.to_string(),
    }
}

fn listing_text(listing: &Listing) -> String {
    let rows: Vec<[String; 4]> = listing
        .images
        .iter()
        .map(|item| {
            let mut variants = item.variants.join(", ");
            if item.default_image {
                variants = if variants.is_empty() {
                    "(default)".to_string()
                } else {
                    format!("(default), {variants}")
                };
            }
            [
                item.name.clone(),
                item.lifecycle.state.to_string(),
                variants,
                item.lifecycle.notice.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(&["NAME", "STATE", "VARIANTS", "NOTICE"], &rows)
}

/// Left-aligned columns two spaces apart; the last column is not padded.
fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (index, cell) in cells.iter().enumerate() {
            if index + 1 < N {
                out.push_str(&format!("{cell:<width$}  ", width = widths[index]));
            } else {
                out.push_str(cell);
            }
        }
        text.push_str(out.trim_end());
        text.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    text
}

fn show_text(entry: &EntryView) -> String {
    let mut text = entry.name.clone();
    if let Some(description) = &entry.description {
        text.push_str(&format!(" — {description}"));
    }
    text.push('\n');
    let mut field = |name: &str, value: String| {
        if !value.is_empty() {
            text.push_str(&format!("  {name:<12}{value}\n"));
        }
    };
    let lifecycle = &entry.lifecycle;
    let mut state = state_text(lifecycle);
    if lifecycle.declared != lifecycle.state {
        state.push_str(&format!(" (declared {})", lifecycle.declared));
    }
    field("state", state);
    field("notice", lifecycle.notice.clone().unwrap_or_default());
    field("aliases", entry.aliases.join(", "));
    let owners: Vec<String> = entry
        .owners
        .iter()
        .map(|owner| match &owner.contact {
            Some(contact) => format!("{} <{contact}>", owner.name),
            None => owner.name.clone(),
        })
        .collect();
    field("owners", owners.join(", "));
    field("base", entry.base.clone().unwrap_or_default());
    field("base of", entry.base_of.join(", "));
    field("channels", entry.channels.join(", "));
    field(
        "image",
        entry
            .image
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    );
    field("defined at", entry.source.to_string());
    if !entry.variants.is_empty() {
        text.push_str("  variants\n");
        let width = entry
            .variants
            .keys()
            .map(|name| name.chars().count())
            .max()
            .unwrap_or(0);
        for (name, variant) in &entry.variants {
            let mut line = format!("    {name:<width$}  {}", variant.image);
            if !variant.extra.is_empty() {
                let extra = serde_json::Value::Object(variant.extra.clone());
                line.push_str(&format!("  extra {extra}"));
            }
            text.push_str(&line);
            text.push('\n');
        }
    }
    text
}

fn which_text(found: &Which) -> String {
    let mut text = found.name.clone();
    if let Some(variant) = &found.variant {
        text.push_str(&format!(" {variant}"));
    }
    if found.lifecycle.state != State::Stable {
        text.push_str(&format!(" ({})", state_text(&found.lifecycle)));
    }
    text.push('\n');
    text
}

fn export(
    catalog: &Catalog,
    format: ExportFormat,
    name: &str,
    namespace: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let text = match format {
        ExportFormat::Berth => catalog.to_berth_yaml(),
        ExportFormat::Toolforge => catalog
            .to_toolforge_yaml(now)
            .map_err(|error| usage(error.to_string()))?,
        ExportFormat::Configmap => catalog
            .to_configmap_yaml(now, name, namespace)
            .map_err(|error| usage(error.to_string()))?,
    };
    crate::cmd::print_text(&text);
    Ok(ExitCode::SUCCESS)
}

fn import(format: ImportFormat, file: &Path, now: DateTime<Utc>) -> anyhow::Result<ExitCode> {
    let ImportFormat::Toolforge = format;
    let source = CatalogSource {
        path: file.to_path_buf(),
        format: Format::Toolforge,
    };
    let loaded = read(&source, now).with_context(|| format!("importing {}", file.display()))?;
    for diagnostic in &loaded.diagnostics {
        eprintln!("{diagnostic}");
    }
    let Some(catalog) = loaded.catalog else {
        let errors = loaded.errors().count();
        return Err(usage(format!(
            "{} is not a valid Toolforge images-v1.yaml ({errors} error{})",
            file.display(),
            plural(errors)
        )));
    };
    crate::cmd::print_text(&catalog.to_berth_yaml());
    Ok(ExitCode::SUCCESS)
}
