//! `berth provenance REF`: where a digest came from, as far as the image itself says — the OCI
//! `org.opencontainers.image.{source,revision,created,base.name,base.digest}` keys, from the
//! platform manifest's annotations first, then the config's labels — with the base claim
//! checked against the base found by layer lineage in the store. A claim is only a claim:
//! it "agrees" or "disagrees" with lineage, or stays "unverified" without a store that knows the
//! image. With a store, the pipeline's record of the digest (`berth provenance record`) is
//! shown beside the claims; with `--key`, the digest's cosign signatures and attestations are
//! verified (berth-sync's `signatures`, berth-trust).
//!
//! `berth provenance record DIGEST --source URL --commit SHA --tests passed ...`: what a
//! pipeline reports about the digest it built and tested, into the store (audited); the
//! `provenance` policy rule admits a digest by it.

use std::process::ExitCode;

use berth_core::provenance::{self, BaseCheck, Claimed, Record, Tests};
use berth_core::{Digest, ImageRef};
use berth_oci::{Client, Platform};
use serde::Serialize;

use crate::cmd::inspect::{Inspection, Wanted, describe};
use crate::environment::Environment;
use crate::exit::{NEGATIVE, usage};
use crate::registry_args::RegistryArgs;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The image reference (`registry/repo:tag`, `repo@sha256:...`).
    #[arg(required = true)]
    pub reference: Option<String>,
    /// The store whose lineage checks the base claim (default: $BERTH_STORE).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Platform of an index, as os/arch[/variant] (default: this machine's).
    #[arg(long)]
    pub platform: Option<String>,
    /// A trusted public key (PEM: ECDSA P-256 or Ed25519), repeatable: the digest's cosign
    /// signatures and attestations (`sha256-<hex>.sig`/`.att`) are verified with them, and
    /// the command exits 1 when none of its signatures verifies.
    #[arg(long = "key", value_name = "FILE")]
    pub keys: Vec<std::path::PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Record what a pipeline built and tested: the digest it pushed, its source, commit,
    /// build and test result. The `provenance` policy rule admits a digest by its record.
    Record(RecordArgs),
}

#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// The digest the pipeline pushed: `sha256:…` or `REF@sha256:…` (never a tag: it moves).
    pub digest: String,
    /// The source repository's URL.
    #[arg(long, value_name = "URL")]
    pub source: Option<String>,
    /// The commit built (7 to 64 hex digits).
    #[arg(long, value_name = "SHA")]
    pub commit: Option<String>,
    /// The build's page.
    #[arg(long, value_name = "URL")]
    pub build: Option<String>,
    /// The build's logs.
    #[arg(long, value_name = "URL")]
    pub logs: Option<String>,
    /// What the tests came to.
    #[arg(long, value_enum)]
    pub tests: Option<TestsArg>,
    /// The test report.
    #[arg(long, value_name = "URL")]
    pub tests_url: Option<String>,
    #[arg(long, help = crate::cmd::channels::ACTOR_HELP)]
    pub actor: Option<String>,
    /// The store (default: $BERTH_STORE, then sqlite://berth.db).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Print the record as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TestsArg {
    Passed,
    Failed,
}

/// The digest a `record` names: a bare digest, or a reference's.
pub fn recorded_digest(text: &str) -> Result<Digest, String> {
    if let Ok(digest) = Digest::parse(text) {
        return Ok(digest);
    }
    match ImageRef::parse(text) {
        Ok(image) => image.digest().cloned().ok_or_else(|| {
            format!(
                "{text:?} names a tag, which can move: give the digest the pipeline pushed \
                 (sha256:… or REF@sha256:…)"
            )
        }),
        Err(error) => Err(format!("{text:?}: {error}")),
    }
}

fn record(args: RecordArgs, env: &Environment) -> anyhow::Result<ExitCode> {
    let digest = recorded_digest(&args.digest).map_err(usage)?;
    let record = Record {
        source: args.source,
        commit: args.commit,
        build: args.build,
        logs: args.logs,
        tests: args.tests.map(|tests| match tests {
            TestsArg::Passed => Tests::Passed,
            TestsArg::Failed => Tests::Failed,
        }),
        tests_url: args.tests_url,
        recorded_by: crate::cmd::channels::actor(args.actor, env),
        recorded_at: chrono::Utc::now(),
    };
    record
        .check()
        .map_err(|problem| usage(format!("--{}", problem.replacen('_', "-", 1))))?;
    let url = crate::cmd::store_url(args.store, env);
    crate::cmd::runtime()?.block_on(async {
        let store = crate::cmd::open_store(&url).await?;
        let done = store.record_provenance(&digest, &record).await;
        store.close().await;
        anyhow::Ok(done?)
    })?;
    if args.json {
        crate::cmd::print_json(&serde_json::json!({"digest": digest, "record": record}))?;
    } else {
        crate::cmd::print_text(&format!(
            "recorded {digest}: tests {}, source {}\n",
            record.tests.map_or("not given", Tests::as_str),
            record.source.as_deref().unwrap_or("not given")
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// What `berth provenance` reports; also the `--json` shape.
#[derive(Debug, Serialize)]
pub struct Provenance {
    pub reference: String,
    pub digest: Digest,
    /// The platform image described.
    pub image: Digest,
    pub source: Option<Claimed>,
    pub revision: Option<Claimed>,
    pub created: Option<Claimed>,
    pub base_name: Option<Claimed>,
    pub base_digest: Option<Claimed>,
    /// The base by layer lineage, from the store.
    pub lineage_base: Option<Digest>,
    pub base_check: BaseCheck,
    /// What a pipeline recorded about the digest (`berth provenance record`), from the store.
    pub record: Option<Record>,
    /// With `--key`: every signature and attestation found, checked; `None` without keys.
    pub signatures: Option<Vec<berth_sync::signatures::Checked>>,
    /// With a store: the signatures and attestations `berth sync` read and what each trusted
    /// key made of them (what the policy's `signatures` and `provenance` rules decide from).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synced_signatures: Option<berth_store::signatures::SignatureView>,
}

/// The provenance the image states, checked against what lineage found.
pub fn establish(inspection: &Inspection) -> Provenance {
    let claims = provenance::claims(
        &inspection.image.annotations,
        &inspection.image.config.labels,
    );
    let lineage = inspection.lineage.as_ref();
    let lineage_base = lineage.and_then(|lineage| lineage.base.clone());
    let base_check = provenance::check_base(
        &claims,
        lineage.map(|lineage| (lineage.base.as_ref(), lineage.base_indexes.as_slice())),
    );
    Provenance {
        reference: inspection.reference.clone(),
        digest: inspection.digest.clone(),
        image: inspection.image.digest.clone(),
        source: claims.source,
        revision: claims.revision,
        created: claims.created,
        base_name: claims.base_name,
        base_digest: claims.base_digest,
        lineage_base,
        base_check,
        record: None,
        signatures: None,
        synced_signatures: None,
    }
}

/// The trusted keys of `--key` files, each named by its file's stem.
fn trusted_keys(files: &[std::path::PathBuf]) -> anyhow::Result<Vec<berth_trust::TrustedKey>> {
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file)
                .map_err(|error| usage(format!("--key {}: {error}", file.display())))?;
            let name = file
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .unwrap_or_else(|| file.display().to_string());
            berth_trust::TrustedKey::from_pem(&name, &text)
                .map_err(|error| usage(format!("--key {}: {error}", file.display())))
        })
        .collect()
}

pub fn exec(args: Args, env: &Environment) -> anyhow::Result<ExitCode> {
    if let Some(Command::Record(record_args)) = args.command {
        return record(record_args, env);
    }
    let reference = args.reference.clone().unwrap_or_default();
    let image = ImageRef::parse(&reference).map_err(|error| usage(error.to_string()))?;
    let wanted = match &args.platform {
        Some(text) => Wanted::Asked(
            Platform::parse(text)
                .ok_or_else(|| usage(format!("--platform {text:?}: expected os/arch[/variant]")))?,
        ),
        None => Wanted::Host(Platform::host()),
    };
    let keys = trusted_keys(&args.keys)?;
    let client = Client::new(args.registry.client_config(env)?);
    let store_url = args.store.clone().or_else(|| env.get("BERTH_STORE"));
    let provenance = crate::cmd::runtime()?.block_on(async {
        let store = match &store_url {
            Some(url) => Some(crate::cmd::open_store_read_only(url).await?),
            None => None,
        };
        let inspection = match describe(&client, &image, &wanted, store.as_ref(), false).await? {
            Ok(inspection) => inspection,
            Err(missing) => return Err(usage(missing.to_string())),
        };
        let mut provenance = establish(&inspection);
        if !keys.is_empty() {
            provenance.signatures = Some(
                berth_sync::signatures::check(&client, &image, &provenance.digest, &keys).await?,
            );
        }
        if let Some(store) = store {
            provenance.record = store.provenance_of(&provenance.digest).await?;
            provenance.synced_signatures = Some(store.signatures_of(&provenance.digest).await?);
            store.close().await;
        }
        anyhow::Ok(provenance)
    })?;
    if args.json {
        crate::cmd::print_json(&provenance)?;
    } else {
        crate::cmd::print_text(&text(&provenance));
    }
    let unsigned = provenance.signatures.as_ref().is_some_and(|found| {
        !found
            .iter()
            .any(|one| one.kind == "signature" && one.verified_by.is_some())
    });
    Ok(
        if provenance.base_check == BaseCheck::Disagrees || unsigned {
            ExitCode::from(NEGATIVE)
        } else {
            ExitCode::SUCCESS
        },
    )
}

fn text(provenance: &Provenance) -> String {
    use berth_core::quote::escape;
    let mut out = format!(
        "{}\n  digest      {}\n",
        provenance.reference, provenance.digest
    );
    if provenance.image != provenance.digest {
        out.push_str(&format!("  image       {}\n", provenance.image));
    }
    for (name, value) in [
        ("source", &provenance.source),
        ("revision", &provenance.revision),
        ("created", &provenance.created),
        ("base name", &provenance.base_name),
        ("base digest", &provenance.base_digest),
    ] {
        let shown = value.as_ref().map_or_else(
            || "-".to_string(),
            |claim| format!("{} (from the {})", escape(&claim.value), claim.from),
        );
        out.push_str(&format!("  {name:<11} {shown}\n"));
    }
    let lineage = provenance
        .lineage_base
        .as_ref()
        .map_or_else(|| "none known".to_string(), Digest::to_string);
    let check = match provenance.base_check {
        BaseCheck::Agrees => "the base claim agrees with layer lineage",
        BaseCheck::Disagrees => "the base claim DISAGREES with layer lineage",
        BaseCheck::NoClaim => "no base claimed",
        BaseCheck::Unverified => "the base claim is unverified (no store knows this image)",
    };
    out.push_str(&format!("  lineage     {lineage}: {check}\n"));
    match &provenance.record {
        Some(record) => {
            out.push_str(&format!(
                "  recorded    by {} at {}\n",
                escape(&record.recorded_by),
                record.recorded_at.format("%Y-%m-%d %H:%M UTC")
            ));
            for (name, value) in [
                ("source", record.source.as_deref()),
                ("commit", record.commit.as_deref()),
                ("build", record.build.as_deref()),
                ("logs", record.logs.as_deref()),
                ("tests", record.tests.map(Tests::as_str)),
                ("tests url", record.tests_url.as_deref()),
            ] {
                if let Some(value) = value {
                    out.push_str(&format!("    {name:<9} {}\n", escape(value)));
                }
            }
        }
        None => out.push_str("  recorded    no pipeline record (berth provenance record)\n"),
    }
    if let Some(view) = &provenance.synced_signatures {
        if view.layers.is_empty() {
            out.push_str("  synced      no signatures or attestations read by berth sync\n");
        }
        for layer in &view.layers {
            let checks: Vec<String> = view
                .checks
                .iter()
                .filter(|check| check.layer == layer.layer)
                .map(|check| match &check.outcome {
                    Ok(_) => format!("verified by {}", escape(&check.key_name)),
                    Err(refusal) => {
                        format!("not by {}: {}", escape(&check.key_name), escape(refusal))
                    }
                })
                .collect();
            let shown = match (&layer.problem, checks.is_empty()) {
                (Some(problem), _) => format!("not read: {}", escape(problem)),
                (None, true) => "not checked (no trusted keys: berth sync --policy)".to_string(),
                (None, false) => checks.join("; "),
            };
            out.push_str(&format!(
                "  synced      {} {}: {shown}\n",
                layer.kind.as_str(),
                layer.layer
            ));
        }
    }
    match &provenance.signatures {
        None => out.push_str("  signatures  not checked here (give --key FILE)\n"),
        Some(found) if found.is_empty() => {
            out.push_str("  signatures  none found (no sha256-<hex>.sig, .att or referrers tag)\n")
        }
        Some(found) => {
            for one in found {
                let verdict = match (&one.verified_by, &one.refusal) {
                    (Some(key), _) => format!("verified by {key}"),
                    (None, Some(refusal)) => format!("NOT verified: {}", escape(refusal)),
                    (None, None) => "NOT verified".to_string(),
                };
                out.push_str(&format!("  {:<11} {verdict} ({})\n", one.kind, one.tag));
                let tests = one.tests.map(|tests| tests.as_str().to_string());
                for (name, value) in [
                    ("predicate", &one.predicate_type),
                    ("builder", &one.builder),
                    ("source", &one.source_repository),
                    ("commit", &one.source_commit),
                    ("tests", &tests),
                    ("tests url", &one.tests_url),
                ] {
                    if let Some(value) = value {
                        out.push_str(&format!("    {name:<9} {}\n", escape(value)));
                    }
                }
            }
        }
    }
    out
}
