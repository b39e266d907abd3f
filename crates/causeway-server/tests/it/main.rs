//! The HTTP routes in process, through `Router::oneshot` on a real (in-memory) store.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used, reason = "test code: a panic is a failing test")]

mod auth;
mod connections;
mod mlflow;
mod trust;
mod web_ui;
