//! `genesys-archiverd`: the daemon, i.e. `genesys-archiver daemon` with the same flags.

fn main() -> std::process::ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let wants_top_level = args
        .get(1)
        .is_some_and(|a| a == "--version" || a == "-V" || a == "--help" || a == "-h");
    if !wants_top_level {
        args.insert(1, "daemon".into());
    }
    genesys_archiver::main_with(args)
}
