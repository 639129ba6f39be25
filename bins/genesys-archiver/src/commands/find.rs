//! `find`: the recordings of an agent, a queue, a number or a conversation, from the ledger.

use std::process::ExitCode;

use archiver::{FindQuery, IndexEntry, LedgerEntry, RecordStatus};
use chrono::SecondsFormat;
use clap::Args;

use crate::settings::{FileConfig, StateArgs, StoreArgs};
use crate::times::Zone;
use crate::times::parse_time;
use crate::{ConfigError, TzArg, config_err};

#[derive(Args, Debug)]
pub(crate) struct FindArgs {
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
    /// Output: an aligned table with a header (times in --tz), CSV with a header, or one
    /// JSON object per line (the index's object lines, with `status`).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// The same as --format json.
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// Read the archive from the store alone (objects' metadata and the index), not a
    /// ledger. Also what happens when no ledger is named and the default file is absent.
    #[arg(long)]
    from_store: bool,
    /// Key prefix of the index, for --from-store [default: index/].
    #[arg(long, env = "GENESYS_ARCHIVER_INDEX_PREFIX")]
    index_prefix: Option<String>,
    #[command(flatten, next_help_heading = "Ledger")]
    state: StateArgs,
    #[command(flatten, next_help_heading = "Store (with --from-store, or no ledger)")]
    store: StoreArgs,
}

/// How `find` prints what it found.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Table,
    Csv,
    Json,
}

/// The columns of the table and the CSV.
const COLUMNS: [&str; 9] = [
    "start",
    "status",
    "size",
    "media",
    "agents",
    "queues",
    "wrap_up_codes",
    "conversation",
    "key",
];

/// A row's cells, times in `zone`.
fn cells(r: &LedgerEntry, zone: Zone) -> [String; 9] {
    let start = r
        .start_time
        .as_deref()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| zone.show(t.with_timezone(&chrono::Utc)))
        .unwrap_or_else(|| "-".into());
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(" ")
        }
    };
    [
        start,
        r.status.as_str().to_string(),
        r.size.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
        r.media_type.clone().unwrap_or_else(|| "-".into()),
        list(&r.facts.user_ids),
        list(&r.facts.queue_ids),
        list(&r.facts.wrap_up_codes),
        r.conversation_id.clone(),
        r.key.clone(),
    ]
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
    let format = if f.json { Format::Json } else { f.format };
    let mut out = std::io::stdout().lock();
    let written = (|| -> std::io::Result<()> {
        match format {
            Format::Json => {
                for r in &rows {
                    writeln!(out, "{}", json_line(r))?;
                }
            }
            Format::Csv => {
                let mut w = csv::Writer::from_writer(&mut out);
                w.write_record(COLUMNS)?;
                for r in &rows {
                    w.write_record(cells(r, zone))?;
                }
                w.flush()?;
            }
            Format::Table => {
                let table: Vec<[String; 9]> = rows.iter().map(|r| cells(r, zone)).collect();
                let mut widths = COLUMNS.map(str::len);
                for row in &table {
                    for (w, c) in widths.iter_mut().zip(row) {
                        *w = (*w).max(c.chars().count());
                    }
                }
                let line = |row: &[String]| {
                    let mut l = String::new();
                    for (i, (c, w)) in row.iter().zip(widths).enumerate() {
                        if i + 1 == row.len() {
                            l.push_str(c);
                        } else {
                            l.push_str(&format!("{c:<w$}  "));
                        }
                    }
                    l
                };
                let header: Vec<String> = COLUMNS.iter().map(|c| c.to_uppercase()).collect();
                writeln!(out, "{}", line(&header))?;
                for row in &table {
                    writeln!(out, "{}", line(row))?;
                }
                let n = rows.len();
                let noun = if n == 1 { "recording" } else { "recordings" };
                let more = if n as u32 >= f.limit.max(1) {
                    " (the first ones; raise --limit for more)"
                } else {
                    ""
                };
                writeln!(out, "{n} {noun}{more}")?;
            }
        }
        if rows.is_empty() && f.number.is_some() {
            eprintln!(
                "hint: calling and called numbers are kept only when archive or daemon ran with --keep-phone-numbers"
            );
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
