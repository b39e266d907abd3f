//! End-to-end tests through the built `causeway` binary: both demo scenarios, the project the
//! demo leaves behind, and `causeway serve` answering real HTTP on a loopback socket.

mod cli;
mod demo;
mod serve;
mod support;
