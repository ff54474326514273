use std::process::ExitCode;

use clap::Parser;
use sweep_cli::client::Conn;
use sweep_cli::cmd::{self, Cmd};
use sweep_cli::output::Format;

/// Run hyperparameter sweeps of imbalanced multi-label classifiers.
#[derive(Parser)]
#[command(name = "sweep", version)]
struct Cli {
    #[command(flatten)]
    conn: Conn,
    /// Output: a table for people, or json for scripts.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "table")]
    output: Format,
    #[command(subcommand)]
    cmd: Cmd,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A bad value (a budget of -3, a price of `abc`) is one line: what and where.
        Err(e) if e.kind() == clap::error::ErrorKind::ValueValidation => {
            let text = e.render().to_string();
            eprintln!("{}", text.lines().next().unwrap_or("error: bad value"));
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    match cmd::run(cli.cmd, &cli.conn, cli.output).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
