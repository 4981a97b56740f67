//! The registry half of a move: fetch the exact manifest (or index) bytes of a digest, PUT them
//! under a tag with the same media type, and confirm with a HEAD that the tag resolves to the
//! digest. The digest never changes: an index stays an index.

use berth_core::catalog::ImageName;
use berth_core::{Digest, Tag};
use berth_oci::{Client, OciError};

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

/// Points `channel` of `image` at `digest` (a manifest in the same repository) and confirms it
/// with a HEAD; then the immutable `stamp` tag too, when asked for.
pub async fn put(
    client: &Client,
    image: &ImageName,
    digest: &Digest,
    channel: &Tag,
    stamp: Option<&Tag>,
) -> Result<(), ChannelError> {
    let by_digest = image.at(channel).with_digest_only(digest.clone());
    let manifest = client.manifest(&by_digest).await?;
    client
        .put_manifest(
            &by_digest,
            channel,
            &manifest.media_type,
            manifest.bytes.clone(),
        )
        .await?;
    let found = client.resolve(&image.at(channel)).await?.digest;
    if found != *digest {
        return Err(ChannelError::NotConfirmed {
            image: image.canonical(),
            tag: channel.clone(),
            expected: digest.clone(),
            found,
        });
    }
    if let Some(stamp) = stamp {
        client
            .put_manifest(&by_digest, stamp, &manifest.media_type, manifest.bytes)
            .await?;
    }
    Ok(())
}
