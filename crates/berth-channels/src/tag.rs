//! The registry half of a move: fetch the exact manifest (or index) bytes of a digest, PUT them
//! under a tag with the same media type, and confirm with a HEAD that the tag resolves to the
//! digest. The digest never changes: an index stays an index. A target in another repository or
//! registry gets the blobs (and an index's child manifests) it lacks first.

use berth_core::catalog::ImageName;
use berth_core::{Digest, Tag};
use berth_oci::{Client, CopyReport, OciError};

use crate::error::ChannelError;

/// Where `tag` of `image` points, `None` when there is no such tag.
pub async fn current(
    client: &Client,
    image: &ImageName,
    tag: &Tag,
) -> Result<Option<Digest>, OciError> {
    match client.resolve(&image.at(tag)).await {
        Ok(resolved) => Ok(Some(resolved.digest)),
        Err(OciError::NotFound { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Points `channel` of `target` at `digest`, a manifest in `source`'s repository, and confirms
/// it with a HEAD; then the immutable `stamp` tag too, when asked for. When `target` is another
/// repository, everything the manifest refers to is copied there first (mounted where the
/// registry allows it) and what that took is returned; the manifest bytes go in unchanged.
pub async fn put(
    client: &Client,
    (source, target): (&ImageName, &ImageName),
    digest: &Digest,
    channel: &Tag,
    stamp: Option<&Tag>,
) -> Result<Option<CopyReport>, ChannelError> {
    let from = source.at(channel).with_digest_only(digest.clone());
    let manifest = client.manifest(&from).await?;
    let into = target.at(channel).with_digest_only(digest.clone());
    let copied = if source.registry() == target.registry()
        && source.repository() == target.repository()
    {
        None
    } else {
        let report = berth_oci::copy_referenced(client, &from, &into, &manifest).await?;
        tracing::info!(from = %source.canonical(), to = %target.canonical(), %digest, mounted = report.mounted, uploaded = report.uploaded, present = report.present, "copied blobs");
        Some(report)
    };
    client
        .put_manifest(&into, channel, &manifest.media_type, manifest.bytes.clone())
        .await?;
    let found = client.resolve(&target.at(channel)).await?.digest;
    if found != *digest {
        return Err(ChannelError::NotConfirmed {
            image: target.canonical(),
            tag: channel.clone(),
            expected: digest.clone(),
            found,
        });
    }
    if let Some(stamp) = stamp {
        client
            .put_manifest(&into, stamp, &manifest.media_type, manifest.bytes)
            .await?;
    }
    Ok(copied)
}
