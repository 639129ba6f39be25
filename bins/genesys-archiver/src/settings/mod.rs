//! Settings from flags, the environment and a TOML file, in that precedence, and the wiring
//! that turns them into a Genesys client, a sink and a ledger.

mod file;
mod source;
mod state;
mod store;
mod values;

pub(crate) use file::*;
pub(crate) use source::*;
pub(crate) use state::*;
pub(crate) use store::*;
pub(crate) use values::*;
