//! How an image reads in `GET /api/v1/images` and `berth images --json`: one view for both, so
//! the two can never disagree on a field name.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ImageSummary;

/// An image as the API and `berth images --json` show it.
#[derive(Debug, Serialize)]
pub struct ImageView {
    pub digest: String,
    pub platform: String,
    pub os: Option<String>,
    pub os_pretty: Option<String>,
    pub libc: Option<berth_core::osrelease::LibcFamily>,
    pub created: Option<DateTime<Utc>>,
    pub size: u64,
    pub base: Option<String>,
    pub base_shared_layers: Option<usize>,
    pub labels: std::collections::BTreeMap<String, String>,
    /// Live tags that reach the image, directly or through an index (`registry/repo:tag`).
    pub tags: Vec<String>,
}

impl From<&ImageSummary> for ImageView {
    fn from(image: &ImageSummary) -> ImageView {
        let platform = &image.platform;
        ImageView {
            digest: image.digest.to_string(),
            platform: match &platform.variant {
                Some(variant) => format!("{}/{}/{variant}", platform.os, platform.architecture),
                None => format!("{}/{}", platform.os, platform.architecture),
            },
            os: image.os_id.as_ref().map(ToString::to_string),
            os_pretty: image.os_pretty.clone(),
            libc: image.libc,
            created: image.created,
            size: image.total_size,
            base: image.base.as_ref().map(|base| base.base.to_string()),
            base_shared_layers: image.base.as_ref().map(|base| base.shared_layers),
            labels: image.labels.clone(),
            tags: image
                .references
                .iter()
                .map(|at| format!("{}:{}", at.repository, at.tag.as_str()))
                .collect(),
        }
    }
}
