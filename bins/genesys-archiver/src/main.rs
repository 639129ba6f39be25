//! `genesys-archiver`: the command-line interface.

fn main() -> std::process::ExitCode {
    genesys_archiver::main_with(std::env::args_os())
}
