//! The small pieces the look-up caches share (tags in `resolve`, namespace labels in berth-server's
//! `namespaces`): a lock that survives poisoning, and a bounded insert with expiry.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::time::Instant;

/// Locks a cache; a panic elsewhere while it was held does not make it unusable.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Inserts `value` under `key` until `expires`, keeping at most `capacity` entries: expired
/// ones go first, then the one closest to expiry.
pub fn insert_bounded<V>(
    cache: &mut HashMap<String, (V, Instant)>,
    capacity: usize,
    key: String,
    value: V,
    expires: Instant,
) {
    if cache.len() >= capacity {
        let now = Instant::now();
        cache.retain(|_, (_, until)| *until > now);
    }
    if cache.len() >= capacity
        && let Some(oldest) = cache
            .iter()
            .min_by_key(|(_, (_, until))| *until)
            .map(|(key, _)| key.clone())
    {
        cache.remove(&oldest);
    }
    cache.insert(key, (value, expires));
}
