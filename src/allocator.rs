//! The allocator settings of the shipped binary, shared with the benches so that the peak RSS
//! they measure is the binary's.

/// glibc's malloc: one arena for every thread, and small blocks trimmed and large ones mapped
/// at fixed thresholds. The controller's live data is small objects churned by the watches,
/// spread over one arena per busy thread by default: at 10,000 bindings this took the
/// controller's peak RSS from 85.8 to 77.1 MiB (`cargo bench --bench controller_scale`, README
/// "Controller at scale"), with the same calls and time at the default rate, and about 1 s more
/// at the highest (one arena's lock). Called before any thread starts. The container image
/// links glibc statically (`-C target-feature=+crt-static`, see the Dockerfile), so this is
/// its allocator too.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any other thread
    // exists, so no allocation is in flight in another thread.
    unsafe {
        const SMALL_BLOCKS: libc::c_int = 64 * 1024;
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_TRIM_THRESHOLD, SMALL_BLOCKS);
        libc::mallopt(libc::M_MMAP_THRESHOLD, SMALL_BLOCKS);
    }
}
