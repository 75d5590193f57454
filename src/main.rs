//! `probe`: parse the command line, turn it into engine options, call the library, map
//! the outcome to an exit code. No probing logic lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "probe", version, about = "Synthetic purchase-flow prober for In-App Purchase backends")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the fake Apple, Google and reference backend stack.
    Sandbox {
        /// Address to listen on (one listener serves every part).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Folder for the generated credentials, probe.toml and sandbox.json.
        #[arg(long, default_value = "sandbox-state")]
        state_dir: PathBuf,
        /// Fault-injection file (TOML).
        #[arg(long)]
        faults: Option<PathBuf>,
    },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match cli.command {
        Some(Command::Sandbox {
            listen,
            state_dir,
            faults,
        }) => rt.block_on(sandbox(listen, state_dir, faults)),
        None => {
            eprintln!("error: no command given; try `probe --help`");
            ExitCode::from(2)
        }
    }
}

async fn sandbox(listen: String, state_dir: PathBuf, faults: Option<PathBuf>) -> ExitCode {
    let mut options = iap_probe::sandbox::SandboxOptions::default();
    if let Some(path) = faults {
        match iap_probe::sandbox::load_faults(&path) {
            Ok(f) => options.faults = f,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let running = match iap_probe::sandbox::start(&listen, &state_dir, options).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let base = &running.base_url;
    println!("sandbox listening on {}", running.addr);
    println!("  apple   (App Store Server API)  {base}/inApps/...");
    println!("  google  (OAuth2 token)          {base}/token");
    println!("  google  (Play Developer API v3) {base}/androidpublisher/v3/...");
    println!("  backend (reference IAP backend) {base}/iap/...");
    println!("  state   {}", running.state_dir.display());
    println!("  manifest {}", running.state_dir.join("sandbox.json").display());
    println!("Ctrl-C to stop.");
    wait_for_signal().await;
    running.stop().await;
    eprintln!("sandbox stopped");
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
