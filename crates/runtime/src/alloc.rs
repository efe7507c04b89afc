//! The C allocator, set for a controller's shape (docs/performance.md, "Allocator arenas"). Its
//! caches are filled from watch pages decoded on whichever worker thread runs the watch, and read
//! and dropped on others; glibc gives every thread that meets contention an arena of its own (up to
//! 8 per core) and keeps each arena's freed memory, so a process with a large cache holds freed
//! pages in several arenas at once.

/// Arenas per process unless `MALLOC_ARENA_MAX` (glibc's own setting) is given: two for a runtime
/// of two worker threads and a few blocking ones. Measured on the 200-Shard benchmark: all six
/// controllers 127.1 MiB with glibc's default, 121.2 MiB with two.
pub const ARENA_MAX: i32 = 2;

/// Caps glibc's arenas at [`ARENA_MAX`]; call before the caches fill. No effect elsewhere (musl,
/// other systems).
pub fn tune() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() && !cap_arenas(ARENA_MAX) {
        tracing::warn!(ARENA_MAX, "the allocator refused the arena cap");
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn cap_arenas(arenas: i32) -> bool {
    // SAFETY: mallopt sets one parameter of the allocator and may be called at any time;
    // M_ARENA_MAX only bounds the arenas created after it.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn cap_arenas(_: i32) -> bool {
    true
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_arena_cap() {
        assert!(super::cap_arenas(super::ARENA_MAX));
    }
}
