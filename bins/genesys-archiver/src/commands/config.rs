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
