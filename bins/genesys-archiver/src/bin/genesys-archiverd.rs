//! `genesys-archiverd`: the daemon, i.e. `genesys-archiver daemon` with the same flags, its
//! own help and version.

fn main() -> std::process::ExitCode {
    genesys_archiver::daemon_main_with(std::env::args_os())
}
