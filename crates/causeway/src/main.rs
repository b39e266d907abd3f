//! The `causeway` command. All logic lives in the library crates; `args.rs` declares the command
//! line and `commands/` runs each command.

mod args;
mod commands;
mod demo;

fn main() -> std::process::ExitCode {
    commands::main()
}
