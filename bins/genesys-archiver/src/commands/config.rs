//! `config check`: credentials, bucket access and ledger, archiving nothing.

use std::process::ExitCode;

use clap::Subcommand;

use crate::settings::FileConfig;
use crate::{ConfigError, RunArgs, config_err, settings};

#[derive(Subcommand, Debug)]
pub(crate) enum ConfigCommand {
    /// Validate every setting, get a token, reach the bucket and open the ledger.
    Check {
        #[command(flatten)]
        run: Box<RunArgs>,
    },
}

pub(crate) async fn run_config_check(
    run: RunArgs,
    file: &FileConfig,
) -> Result<ExitCode, ConfigError> {
    let source = run.source.resolve(file)?;
    let store = run.store_args().resolve(file)?;
    settings::check_writable(&store)?;
    let index_prefix = run.index.resolve(&settings::StoreArgs::prefix(&store))?;
    println!(
        "settings: ok (key template {}; {})",
        store.key_template_text,
        match &index_prefix {
            Some(p) => format!("index under {p}"),
            None => "no index".into(),
        }
    );
    let client = settings::connect_source(&source).await?;
    // A check says what fails now; it does not go on hoping the next call works.
    client.tokens().token().await.map_err(|e| {
        config_err(format!(
            "genesys: no token from {} ({}): {e}",
            source.client.environment.token_url(),
            source.env_origin
        ))
    })?;
    println!(
        "genesys: ok (token obtained from {})",
        source.client.environment.api_base()
    );
    // Without it, batch downloads silently leave out recordings with sensitive data when the
    // org redacts it (the inventory audit then reports them missing).
    match client
        .holds_permission(genesys_media::VIEW_SENSITIVE_DATA)
        .await
    {
        Ok(true) => println!(
            "genesys: permission {} held",
            genesys_media::VIEW_SENSITIVE_DATA
        ),
        Ok(false) => println!(
            "genesys: warning: the OAuth client lacks {}: if the org redacts sensitive data, batch downloads leave out the recordings holding it, without saying so (`verify --inventory` reports them missing); add it to the client's role",
            genesys_media::VIEW_SENSITIVE_DATA
        ),
        Err(e) => println!(
            "genesys: warning: could not check the permission {}: {e}",
            genesys_media::VIEW_SENSITIVE_DATA
        ),
    }
    let sink = settings::connect_store(&store).await?;
    match sink.prepare_writes().await {
        Ok(()) if !sink.look_before_create() => println!(
            "store: ok ({sink}; conditional writes honoured: one request per new recording)"
        ),
        Ok(()) => println!("store: ok ({sink})"),
        Err(e) => println!(
            "store: warning: {sink}: a probe object could not be written ({e}); if the client may write only under the key prefix this is expected, otherwise archiving will fail"
        ),
    }
    // Opened to read only: a check never creates a ledger (a mistyped path would be "ok").
    let location = run.state.location(file);
    if run.state.is_new_file(file) {
        run.state.refuse_new(file, run.create_ledger)?;
        run.state
            .check_knows_index(
                file,
                run.create_ledger,
                sink.as_ref(),
                index_prefix.as_deref(),
                None,
            )
            .await?;
        let dir = std::path::Path::new(&location)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        settings::check_dir_writable(dir).map_err(|e| {
            config_err(format!(
                "{} {location}: does not exist, and its directory {} cannot hold it: {e}",
                run.state.origin(file),
                dir.display()
            ))
        })?;
        println!(
            "ledger: {location} does not exist yet; the first run creates it (its directory is writable)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let ledger = run.state.open_shared(file).await?;
    run.state
        .check_knows_index(
            file,
            run.create_ledger,
            sink.as_ref(),
            index_prefix.as_deref(),
            Some(&ledger),
        )
        .await?;
    let version = ledger
        .schema_version()
        .await
        .map_err(|e| config_err(e.to_string()))?;
    println!("ledger: ok ({}, schema {version})", ledger.location());
    Ok(ExitCode::SUCCESS)
}
