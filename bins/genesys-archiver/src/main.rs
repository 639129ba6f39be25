//! `genesys-archiver`: the command-line interface.

fn main() -> std::process::ExitCode {
    cap_malloc_arenas();
    genesys_archiver::main_with(std::env::args_os())
}

/// glibc gives each thread that allocates under contention an arena of its own (up to 8 per
/// core) and keeps what is freed in it: with the tokio workers and the blocking pool, the
/// resident size of a long run crept up with the work done (about 48 MiB after 30,000
/// recordings, 36 MiB with two arenas: `bench/scale.sh`). Two arenas are plenty for a
/// process whose hot path is I/O. `MALLOC_ARENA_MAX` in the environment still wins.
fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; it is called before any other
        // thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
