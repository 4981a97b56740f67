//! Giving the heap back after a pass over the whole store: the one place berth calls into libc.
//!
//! A freshness pass at 100,000 images allocates some 75 MB of small objects (digests, tag
//! references, rows) and frees them all when it ends, but glibc keeps the freed pages mapped:
//! `berth serve`'s RSS stayed at ~100 MiB with 24 MB live, until `malloc_trim(0)` handed the
//! free pages back (47 MiB). See docs/benchmarks.md, "serve's memory at 100,000 tags".

/// Called after a freshness pass, a webhook refresh that applied changes, and a retention run.
/// Returns the free pages of every glibc arena to the kernel. Costs a walk of the heap (a few
/// milliseconds at 100 MiB): call it after a pass that freed much, not per request. A no-op
/// with other C libraries, whose allocators return memory on their own terms.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim takes no pointer, only a pad size, and glibc locks each arena while
    // it trims, so it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
