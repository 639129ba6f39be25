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
    let store = run.store.resolve(file)?;
    println!("settings: ok (key template {})", store.key_template_text);
    let client = settings::connect_source(&source).await?;
    client
        .tokens()
        .token()
        .await
        .map_err(|e| config_err(format!("genesys: no token: {e}")))?;
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
    println!("store: ok ({sink})");
    let ledger = run.state.open(file).await?;
    let version = ledger
        .schema_version()
        .await
        .map_err(|e| config_err(e.to_string()))?;
    println!("ledger: ok ({}, schema {version})", ledger.location());
    Ok(ExitCode::SUCCESS)
}
