//! `berth provenance REF`: where a digest came from, as far as the image itself says — the OCI
//! `org.opencontainers.image.{source,revision,created,base.name,base.digest}` keys, from the
//! platform manifest's annotations first, then the config's labels — with the base claim
//! checked against the base found by layer lineage in the store. A claim is only a claim:
//! it "agrees" or "disagrees" with lineage, or stays "unverified" without a store that knows the
//! image. Signatures, attestations and CI records (issue 13) are not read yet.

use std::process::ExitCode;

use berth_core::provenance::{self, BaseCheck, Claimed};
use berth_core::{Digest, ImageRef};
use berth_oci::{Client, Platform};
use serde::Serialize;

use crate::cmd::inspect::{Inspection, Wanted, describe};
use crate::environment::Environment;
use crate::exit::{NEGATIVE, usage};
use crate::registry_args::RegistryArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image reference (`registry/repo:tag`, `repo@sha256:...`).
    pub reference: String,
    /// The store whose lineage checks the base claim (default: $BERTH_STORE).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Platform of an index, as os/arch[/variant] (default: this machine's).
    #[arg(long)]
    pub platform: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
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
    }
}

pub fn exec(args: Args, env: &Environment) -> anyhow::Result<ExitCode> {
    let image = ImageRef::parse(&args.reference).map_err(|error| usage(error.to_string()))?;
    let wanted = match &args.platform {
        Some(text) => Wanted::Asked(
            Platform::parse(text)
                .ok_or_else(|| usage(format!("--platform {text:?}: expected os/arch[/variant]")))?,
        ),
        None => Wanted::Host(Platform::host()),
    };
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
        if let Some(store) = store {
            store.close().await;
        }
        anyhow::Ok(establish(&inspection))
    })?;
    if args.json {
        crate::cmd::print_json(&provenance)?;
    } else {
        crate::cmd::print_text(&text(&provenance));
    }
    Ok(if provenance.base_check == BaseCheck::Disagrees {
        ExitCode::from(NEGATIVE)
    } else {
        ExitCode::SUCCESS
    })
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
    out.push_str("  signatures  not checked (berth does not read signatures yet)\n");
    out
}
