//! Keeps the process's memory within what a Pi allows (the unit's `MemoryMax=256M`, memory budget:
//! peak ≤ 128 MiB, ≤ 64 MiB after 30 s idle under 20 clients).
//!
//! glibc gives each thread that allocates concurrently its own arena, up to 8 per core, and an
//! arena keeps the memory it once held: web requests running on many blocking threads left
//! hundreds of MiB behind (issue 25: 29 → 469 MiB under 20 clients, killed in a 256 MiB cgroup).
//! Two arenas and a small blocking pool bound that. The cap is set here, inside the process, so
//! it holds however lanmeter is started, not only under the unit's `MALLOC_ARENA_MAX`.

/// glibc malloc arenas the process may use: one for the capture/flush side, one shared by the rest.
pub const ARENA_MAX: i32 = 2;

/// Threads the web runtime may run blocking work on (SQLite reads, host readings). Each holds a
/// pooled database connection with its page cache; a household's few browsers never need more,
/// and more only queue (they do not fail).
pub const WEB_BLOCKING_THREADS: usize = 4;

/// Caps glibc's malloc arenas at [`ARENA_MAX`]. Call first thing in `main`, before any thread
/// exists. An explicit `MALLOC_ARENA_MAX` in the environment (glibc reads it itself) is left to
/// win, so an operator can still tune it. Returns whether the cap was set here.
pub fn cap_arenas() -> bool {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return false;
    }
    set_arena_max(ARENA_MAX)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_arena_max(n: i32) -> bool {
    // SAFETY: mallopt(M_ARENA_MAX) only sets a glibc allocator parameter (it takes glibc's own
    // lock); it has no pointer arguments and no effect on memory already allocated.
    unsafe { nix::libc::mallopt(nix::libc::M_ARENA_MAX, n) == 1 }
}

/// Other C libraries (musl) have no per-thread arenas to cap.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_n: i32) -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_arena_cap() {
        assert!(super::set_arena_max(super::ARENA_MAX));
    }
}
