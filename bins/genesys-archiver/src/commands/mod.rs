//! One module per command, each with its arguments and its body (the way cargo keeps
//! `src/bin/cargo/commands/`); parsing, wiring and output shared by them stay in the crate
//! root, `settings`, `output` and `metrics`.

pub(crate) mod archive;
pub(crate) mod config;
pub(crate) mod daemon;
pub(crate) mod demo;
pub(crate) mod find;
pub(crate) mod index;
pub(crate) mod inventory;
pub(crate) mod ledger;
pub(crate) mod quarantine;
pub(crate) mod release;
pub(crate) mod sim;
pub(crate) mod verify;
