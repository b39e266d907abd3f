//! End-to-end tests through the built `causeway` binary: both demo scenarios, the project the
//! demo leaves behind, and `causeway serve` answering real HTTP on a loopback socket.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used, reason = "test code: a panic is a failing test")]

mod cli;
mod demo;
mod drift;
mod gateway;
mod import;
mod live;
mod messages;
mod mlflow_client;
mod real_data;
mod reliability;
mod serve;
mod support;
mod ui;
