//! The `causeway` command. All logic lives in the library crates; see `cli.rs` for the commands.

mod cli;
mod demo;

fn main() -> std::process::ExitCode {
    cli::main()
}
