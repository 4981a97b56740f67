//! Copying an image to another repository or registry: every blob the manifest (and, for an
//! index, each child manifest) refers to that the target lacks — mounted when both repositories
//! are in one registry and it allows that, else streamed from the verified source — then the
//! child manifests by digest. The caller PUTs the top manifest under its tag.

use berth_core::ImageRef;
use berth_core::reference::Reference;

use crate::client::{Client, Manifest, Mount};
use crate::error::OciError;
use crate::manifest::{Descriptor, ManifestKind};

/// What a copy did, blob by blob: for reports and for tests that check a mount happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopyReport {
    /// Blobs the target already held.
    pub present: u32,
    /// Blobs the registry linked from the source repository.
    pub mounted: u32,
    /// Blobs streamed from the source and uploaded.
    pub uploaded: u32,
    /// Child manifests of an index put by digest.
    pub manifests: u32,
}

/// Makes everything `manifest` (fetched from `source`) refers to present in `target`'s
/// repository, so that its bytes can be put there unchanged.
pub async fn copy_referenced(
    client: &Client,
    source: &ImageRef,
    target: &ImageRef,
    manifest: &Manifest,
) -> Result<CopyReport, OciError> {
    let mut report = CopyReport::default();
    copy_into(client, source, target, manifest, &mut report).await?;
    Ok(report)
}

async fn copy_into(
    client: &Client,
    source: &ImageRef,
    target: &ImageRef,
    manifest: &Manifest,
    report: &mut CopyReport,
) -> Result<(), OciError> {
    match &manifest.kind {
        ManifestKind::Image(image) => {
            for descriptor in std::iter::once(&image.config).chain(&image.layers) {
                copy_blob(client, source, target, descriptor, report).await?;
            }
        }
        ManifestKind::Index(index) => {
            for child in &index.manifests {
                let by_digest = target.with_digest_only(child.digest.clone());
                match client.resolve(&by_digest).await {
                    Ok(_) => continue,
                    Err(OciError::NotFound { .. }) => {}
                    Err(error) => return Err(error),
                }
                let fetched = client.manifest_of(source, child).await?;
                Box::pin(copy_into(client, source, target, &fetched, report)).await?;
                client
                    .put_manifest_at(
                        target,
                        &Reference::Digest(child.digest.clone()),
                        &fetched.media_type,
                        fetched.bytes.clone(),
                    )
                    .await?;
                report.manifests += 1;
            }
        }
    }
    Ok(())
}

async fn copy_blob(
    client: &Client,
    source: &ImageRef,
    target: &ImageRef,
    descriptor: &Descriptor,
    report: &mut CopyReport,
) -> Result<(), OciError> {
    // Foreign layers (Windows base layers) are fetched from their URLs, never pushed.
    if descriptor.media_type.contains("nondistributable")
        || descriptor.media_type.contains("foreign")
    {
        return Ok(());
    }
    if client.has_blob(target, &descriptor.digest).await? {
        report.present += 1;
        return Ok(());
    }
    let location = if source.registry() == target.registry() {
        match client
            .mount_blob(target, &descriptor.digest, source.repository())
            .await?
        {
            Mount::Mounted => {
                report.mounted += 1;
                return Ok(());
            }
            Mount::UploadStarted(location) => location,
        }
    } else {
        client.start_blob_upload(target, &descriptor.digest).await?
    };
    let reader = client.blob(source, descriptor).await?;
    client.upload_blob(target, location, reader).await?;
    report.uploaded += 1;
    Ok(())
}
