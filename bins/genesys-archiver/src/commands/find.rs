//! `find`: the recordings of an agent, a queue, a number or a conversation, from the ledger.

use std::process::ExitCode;

use archiver::{FindQuery, IndexEntry, LedgerEntry, RecordStatus};
use chrono::SecondsFormat;
use clap::Args;

use crate::settings::{FileConfig, StateArgs, StoreArgs};
use crate::times::parse_time;
use crate::{ConfigError, TzArg, config_err};

#[derive(Args, Debug)]
pub(crate) struct FindArgs {
    #[command(flatten)]
    state: StateArgs,
    /// Recordings an agent (user id) took part in.
    #[arg(long)]
    agent: Option<String>,
    /// Recordings of conversations routed through this queue (queue id).
    #[arg(long)]
    queue: Option<String>,
    /// Recordings of conversations wrapped up with this code (wrap-up code id).
    #[arg(long)]
    wrap_up_code: Option<String>,
    /// Recordings with this calling or called number (only kept with --keep-phone-numbers).
    #[arg(long)]
    number: Option<String>,
    /// The recordings of one conversation.
    #[arg(long)]
    conversation: Option<String>,
    /// Recordings that started at or after this time (forms as for archive --from).
    #[arg(long)]
    from: Option<String>,
    /// Recordings that started before this time.
    #[arg(long)]
    to: Option<String>,
    #[command(flatten)]
    tz: TzArg,
    /// Also rows that are not archived (pending, failed, quarantined).
    #[arg(long)]
    all: bool,
    /// At most this many rows.
    #[arg(long, default_value_t = 1000)]
    limit: u32,
    /// One JSON object per line (the index's object lines, with `status`).
    #[arg(long)]
    json: bool,
    /// Read the archive from the store alone (objects' metadata and the index), not a
    /// ledger. Also what happens when no ledger is named and the default file is absent.
    #[arg(long)]
    from_store: bool,
    /// Key prefix of the index, for --from-store [default: index/].
    #[arg(long, env = "GENESYS_ARCHIVER_INDEX_PREFIX")]
    index_prefix: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

pub(crate) async fn run_find(f: FindArgs, file: &FileConfig) -> Result<ExitCode, ConfigError> {
    let zone = f.tz.zone()?;
    let time = |name: &str, v: &Option<String>| {
        v.as_deref()
            .map(|t| parse_time(name, t, zone))
            .transpose()
            .map(|t| t.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)))
    };
    let q = FindQuery {
        agent: f.agent.clone(),
        queue: f.queue.clone(),
        wrap_up_code: f.wrap_up_code.clone(),
        number: f.number.clone(),
        conversation: f.conversation.clone(),
        from: time("from", &f.from)?,
        to: time("to", &f.to)?,
        status: (!f.all).then_some(RecordStatus::Archived),
        limit: Some(f.limit.max(1)),
    };
    if let (Some(a), Some(b)) = (&q.from, &q.to)
        && a >= b
    {
        return Err(config_err("--from must be before --to"));
    }
    let index_prefix = f
        .index_prefix
        .clone()
        .unwrap_or_else(|| archiver::DEFAULT_INDEX_PREFIX.to_string());
    let read =
        super::ledger::read_from(&f.state, &f.store, file, f.from_store, &index_prefix).await?;
    let rows = read
        .ledger()
        .find(&q)
        .await
        .map_err(|e| config_err(e.to_string()))?;
    // Written through a handle that reports errors: a reader that stops early (`| head -1`)
    // closes the pipe, and that ends the listing quietly instead of a panic.
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let written = (|| -> std::io::Result<()> {
        for r in &rows {
            if f.json {
                writeln!(out, "{}", json_line(r))?;
            } else {
                writeln!(
                    out,
                    "{}  {:<11}  {:>10}  {}  conversation {}",
                    r.start_time.as_deref().unwrap_or("(no start)"),
                    r.status.as_str(),
                    r.size.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                    r.key,
                    r.conversation_id
                )?;
            }
        }
        if !f.json {
            let more = if rows.len() as u32 >= f.limit.max(1) {
                " (the first ones; raise --limit for more)"
            } else {
                ""
            };
            writeln!(out, "{} recordings{more}", rows.len())?;
        }
        out.flush()
    })();
    match written {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(config_err(format!("writing the results: {e}"))),
    }
}

/// The index's object line for a row, with its status.
fn json_line(r: &LedgerEntry) -> String {
    let mut v = serde_json::to_value(IndexEntry::from_ledger(r.clone())).expect("serializable");
    v["status"] = serde_json::Value::from(r.status.as_str());
    v.to_string()
}
