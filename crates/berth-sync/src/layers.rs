//! Reads an image's layers straight from the registry into the layer scanner (berth-layers),
//! on a blocking thread, with layer summaries cached by digest in memory and in the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use berth_core::Digest;
use berth_core::ImageRef;
use berth_core::osrelease::Architecture;
use berth_layers::{
    ImageScan, LayerCache, LayerDescriptor, LayerError, LayerSummary, Limits, ReadHow, ScanConfig,
    scan_image,
};
use berth_oci::{Client, Descriptor};

use crate::blob_read::spawn_pump;

/// Summaries shared by every image of one sync: a base layer is read once, however many
/// images sit on it. Seeded from the store's layer facts.
#[derive(Clone, Default)]
pub struct SharedSummaries(Arc<Mutex<HashMap<Digest, LayerSummary>>>);

impl SharedSummaries {
    pub fn contains(&self, layer: &Digest) -> bool {
        self.0
            .lock()
            .expect("summary cache lock")
            .contains_key(layer)
    }

    pub fn insert(&self, summary: LayerSummary) {
        self.0
            .lock()
            .expect("summary cache lock")
            .insert(summary.digest.clone(), summary);
    }
}

/// The scanner's view of the shared cache; remembers what it added so the sync can store it.
struct RecordingCache {
    shared: SharedSummaries,
    added: Vec<LayerSummary>,
}

impl LayerCache for RecordingCache {
    fn get(&self, layer: &Digest) -> Option<LayerSummary> {
        self.shared
            .0
            .lock()
            .expect("summary cache lock")
            .get(layer)
            .cloned()
    }

    fn put(&mut self, summary: LayerSummary) {
        self.added.push(summary.clone());
        self.shared.insert(summary);
    }
}

/// What reading one image's layers gave.
pub struct LayerScan {
    pub result: Result<ImageScan, LayerError>,
    /// Summaries read now (complete ones only): to be recorded as layer facts.
    pub added: Vec<LayerSummary>,
    pub layers_read: u64,
    pub layers_cached: u64,
    pub compressed_bytes: u64,
}

/// Scans `layers` of `image` (bottom first). Every layer is read whole once (not stopping at
/// the answer), so its blob digest is verified and its summary can be cached for every image
/// that shares it.
pub async fn scan_layers(
    client: &Client,
    image: &ImageRef,
    layers: &[Descriptor],
    architecture: Architecture,
    shared: &SharedSummaries,
    limits: &Limits,
) -> LayerScan {
    let handle = tokio::runtime::Handle::current();
    let client = client.clone();
    let name = image.to_string();
    let image = image.clone();
    let by_digest: HashMap<Digest, Descriptor> = layers
        .iter()
        .map(|layer| (layer.digest.clone(), layer.clone()))
        .collect();
    let descriptors: Vec<LayerDescriptor> = layers
        .iter()
        .map(|layer| LayerDescriptor {
            digest: layer.digest.clone(),
            media_type: Some(layer.media_type.clone()),
            size: Some(layer.size),
        })
        .collect();
    let mut cache = RecordingCache {
        shared: shared.clone(),
        added: Vec::new(),
    };
    let limits = limits.clone();
    let task = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let clock = move || start.elapsed();
        let config = ScanConfig {
            limits,
            stop_early: false,
            clock: &clock,
        };
        let open = |layer: &LayerDescriptor| {
            let descriptor = &by_digest[&layer.digest];
            let blob = handle
                .block_on(client.blob(&image, descriptor))
                .map_err(std::io::Error::other)?;
            let _runtime = handle.enter();
            Ok(spawn_pump(blob))
        };
        let result = scan_image(&descriptors, &architecture, open, &mut cache, &config);
        (result, cache.added)
    });
    let top = layers.last().map(|layer| layer.digest.clone());
    let (result, added) = match task.await {
        Ok(done) => done,
        // A panic in the reader is a bug: it fails this image's repository (as a registry
        // failure would), not the whole sync.
        Err(error) => {
            tracing::error!(image = %name, error = %error, "the layer reader stopped");
            let failure = LayerError::Read {
                layer: top.expect("scan_layers is called with layers"),
                source: std::io::Error::other(format!("the layer reader stopped: {error}")),
            };
            (Err(failure), Vec::new())
        }
    };
    let mut scan = LayerScan {
        layers_read: 0,
        layers_cached: 0,
        compressed_bytes: 0,
        result,
        added,
    };
    if let Ok(image_scan) = &scan.result {
        for layer in &image_scan.layers {
            match layer.how {
                ReadHow::Cached => scan.layers_cached += 1,
                ReadHow::Read {
                    compressed_bytes, ..
                } => {
                    scan.layers_read += 1;
                    scan.compressed_bytes += compressed_bytes;
                }
                ReadHow::Skipped => {}
            }
        }
    }
    scan
}

/// Reads one image's OS identity and libc from its layers, outside a sync (no store, no
/// shared cache): what `berth inspect` does for an image the store does not know.
pub async fn identify(
    client: &Client,
    image: &ImageRef,
    layers: &[Descriptor],
    architecture: Architecture,
) -> Result<ImageScan, LayerError> {
    let summaries = SharedSummaries::default();
    scan_layers(
        client,
        image,
        layers,
        architecture,
        &summaries,
        &Limits::default(),
    )
    .await
    .result
}

/// Lists each of `layers` of `image` (`berth diff`), read from the registry on a blocking
/// thread within the default limits, at most `max_files` entries kept per layer.
pub async fn list_layers(
    client: &Client,
    image: &ImageRef,
    layers: &[Descriptor],
    max_files: usize,
) -> Result<Vec<(Digest, berth_layers::listing::Listing)>, LayerError> {
    let Some(first) = layers.first().map(|layer| layer.digest.clone()) else {
        return Ok(Vec::new());
    };
    let handle = tokio::runtime::Handle::current();
    let client = client.clone();
    let image = image.clone();
    let layers = layers.to_vec();
    let task = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let clock = move || start.elapsed();
        let config = ScanConfig {
            limits: Limits::default(),
            stop_early: false,
            clock: &clock,
        };
        let mut listings = Vec::new();
        for layer in &layers {
            let descriptor = LayerDescriptor {
                digest: layer.digest.clone(),
                media_type: Some(layer.media_type.clone()),
                size: Some(layer.size),
            };
            let read_error = |source: std::io::Error| LayerError::Read {
                layer: layer.digest.clone(),
                source,
            };
            let blob = handle
                .block_on(client.blob(&image, layer))
                .map_err(|error| read_error(std::io::Error::other(error)))?;
            let reader = {
                let _runtime = handle.enter();
                spawn_pump(blob)
            };
            let listing =
                berth_layers::listing::list_layer(&descriptor, reader, &config, max_files)?;
            listings.push((layer.digest.clone(), listing));
        }
        Ok(listings)
    });
    match task.await {
        Ok(done) => done,
        Err(error) => Err(LayerError::Read {
            layer: first,
            source: std::io::Error::other(format!("the layer reader stopped: {error}")),
        }),
    }
}
