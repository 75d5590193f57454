//! `probe`: parse the command line, turn it into engine options, call the library, map
//! the outcome to an exit code. No probing logic lives here.
//!
//! Exit codes: 0 all pass; 1 an SLO or a probe failed; 2 usage, config or credential-file
//! error (nothing was probed); 3 internal error.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use iap_probe::app::{self, AppError, RunRequest, Selection, TokenKind};
use iap_probe::probe::Platform;
use iap_probe::report::{Format, Report};

#[derive(Parser)]
#[command(
    name = "probe",
    version,
    about = "Synthetic purchase-flow prober for In-App Purchase backends",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// `probe --platform ios` runs `run`.
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run probes against the configured backend (the default command).
    Run(RunArgs),
    /// Start the embedded sandbox and run every shipped probe against it.
    Demo {
        /// Fault-injection file (TOML) for the sandbox, to see a failing run.
        #[arg(long)]
        faults: Option<PathBuf>,
        #[command(flatten)]
        out: OutputArgs,
    },
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
    /// Validate probe.toml and probes/ offline.
    Check {
        #[arg(long, short, default_value = "probe.toml")]
        config: PathBuf,
    },
    /// Show probes, platforms, steps and SLOs.
    List {
        #[arg(long, short, default_value = "probe.toml")]
        config: PathBuf,
    },
    /// Run the probes on a schedule and serve /metrics, /healthz and /results/latest.
    Daemon {
        #[arg(long, short, default_value = "probe.toml")]
        config: PathBuf,
        /// Time between run starts, e.g. 60s.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        interval: Duration,
        /// Random extra delay, as a share of the interval, e.g. 10%.
        #[arg(long, default_value = "0%", value_parser = parse_percent)]
        jitter: f64,
        /// Address for /metrics, /healthz and /results/latest.
        #[arg(long, default_value = "127.0.0.1:9464")]
        listen: String,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Summarise the run history: runs, success ratios, merged percentiles, alerts.
    History {
        #[arg(long, short, default_value = "probe.toml")]
        config: PathBuf,
        /// How far back, e.g. 15m.
        #[arg(long, default_value = "15m", value_parser = parse_duration)]
        window: Duration,
        /// Only this probe.
        #[arg(long = "probe", value_name = "NAME")]
        probe: Option<String>,
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
    },
    /// Acquire a credential and show its claims and expiry (never the secret).
    Token {
        #[arg(value_enum)]
        provider: Provider,
        #[arg(long, short, default_value = "probe.toml")]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Provider {
    Apple,
    Google,
}

#[derive(Clone, Copy, ValueEnum)]
enum PlatformArg {
    Ios,
    Android,
    All,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Table,
    Json,
    Junit,
    Prometheus,
}

#[derive(Args, Clone)]
struct OutputArgs {
    /// Output format (default: table on a terminal, json otherwise).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Write the report to this file instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Also write JUnit XML to this file (for CI), whatever --format says.
    #[arg(long, value_name = "FILE")]
    junit_output: Option<PathBuf>,
    /// Also push the metrics to this Prometheus Pushgateway (e.g. http://pushgateway:9091).
    #[arg(long, value_name = "URL")]
    push: Option<String>,
    /// Only these platforms' probes (platform-independent probes always run).
    #[arg(long, value_enum)]
    platform: Option<PlatformArg>,
    /// Only this probe (repeatable).
    #[arg(long = "probe", value_name = "NAME")]
    probes: Vec<String>,
    /// Repeat every probe N times (sampling mode; default 1, or unbounded with --duration).
    #[arg(long)]
    iterations: Option<u64>,
    /// Concurrent workers per probe in sampling mode.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Fixed arrival rate: start N iterations per second per probe, whatever the answers'
    /// speed; a late start is measured from when it was due (coordinated omission).
    #[arg(long, value_name = "PER_SECOND", value_parser = parse_rate, allow_negative_numbers = true)]
    rate: Option<f64>,
    /// Sample for this long, e.g. 30s (with --iterations, whichever ends first).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Whole-run deadline, e.g. 120s (default: probe.toml's, plus --duration).
    #[arg(long, value_parser = parse_duration)]
    deadline: Option<Duration>,
}

#[derive(Args, Clone)]
struct RunArgs {
    #[arg(long, short, default_value = "probe.toml")]
    config: PathBuf,
    #[command(flatten)]
    out: OutputArgs,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 120s or 2m)"))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err("write iterations per second above zero, e.g. 100 or 0.5".into()),
    }
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?}: write a percentage such as 10%"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("{s:?}: between 0% and 100%"));
    }
    Ok(v / 100.0)
}

fn init_tracing() {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // These crates log request and response bodies and headers at debug/trace level —
    // assertions, access tokens. Capped whatever RUST_LOG says: secrets never leak.
    for dep in [
        "yup_oauth2",
        "hyper",
        "hyper_util",
        "h2",
        "reqwest",
        "rustls",
    ] {
        if let Ok(d) = format!("{dep}=info").parse() {
            filter = filter.add_directive(d);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    std::panic::set_hook(Box::new(|info| {
        eprintln!("internal error: {info} (please report this)");
        std::process::exit(3);
    }));
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("internal error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let result = rt.block_on(dispatch(cli));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn dispatch(cli: Cli) -> Result<u8, AppError> {
    match cli.command {
        None => run(&cli.run.config, &cli.run.out).await,
        Some(Command::Run(args)) => run(&args.config, &args.out).await,
        Some(Command::Demo { faults, out }) => {
            let report = app::demo(faults.as_deref(), &request(&out)).await?;
            emit(&report, &out).await
        }
        Some(Command::Sandbox {
            listen,
            state_dir,
            faults,
        }) => sandbox(listen, state_dir, faults).await,
        Some(Command::Check { config }) => {
            println!("{}", app::check(&config).await?);
            Ok(0)
        }
        Some(Command::List { config }) => {
            print!("{}", app::list(&config)?);
            Ok(0)
        }
        Some(Command::Daemon {
            config,
            interval,
            jitter,
            listen,
            out,
        }) => {
            if interval.is_zero() {
                return Err(AppError::Usage("--interval must be above zero".into()));
            }
            // Fail fast on a bad config: a daemon that starts broken pages nobody.
            app::load(&config)?;
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .map_err(|e| AppError::Usage(format!("cannot listen on {listen}: {e}")))?;
            let addr = listener
                .local_addr()
                .map_err(|e| AppError::Internal(e.to_string()))?;
            eprintln!(
                "probe daemon: every {} on http://{addr} (/metrics, /healthz, /results/latest)",
                humantime::format_duration(interval)
            );
            let opts = iap_probe::daemon::DaemonOptions {
                config,
                interval,
                jitter,
                request: RunRequest {
                    progress: false,
                    ..request(&out)
                },
            };
            iap_probe::daemon::serve(listener, opts, wait_for_signal())
                .await
                .map_err(|e| AppError::Internal(e.to_string()))?;
            eprintln!("probe daemon: stopped");
            Ok(0)
        }
        Some(Command::History {
            config,
            window,
            probe,
            format,
        }) => {
            let (summary, alerts) = app::history(&config, window, probe).await?;
            let json = match format {
                Some(FormatArg::Json) => true,
                Some(FormatArg::Table) => false,
                Some(_) => {
                    return Err(AppError::Usage("probe history speaks table or json".into()));
                }
                None => !std::io::stdout().is_terminal(),
            };
            if json {
                print!("{}", iap_probe::history::render::json(&summary, &alerts));
            } else {
                print!("{}", iap_probe::history::render::table(&summary, &alerts));
            }
            Ok(0)
        }
        Some(Command::Token { provider, config }) => {
            let kind = match provider {
                Provider::Apple => TokenKind::Apple,
                Provider::Google => TokenKind::Google,
            };
            print!("{}", app::token(&config, kind).await?);
            Ok(0)
        }
    }
}

fn request(out: &OutputArgs) -> RunRequest {
    RunRequest {
        selection: Selection {
            platform: out.platform.map(|p| match p {
                PlatformArg::Ios => Platform::Ios,
                PlatformArg::Android => Platform::Android,
                PlatformArg::All => Platform::Any,
            }),
            probes: out.probes.clone(),
        },
        iterations: out.iterations.unwrap_or(match out.duration {
            Some(_) => u64::MAX,
            None => 1,
        }),
        concurrency: out.concurrency,
        deadline: out.deadline,
        rate: out.rate,
        duration: out.duration,
        // People watching a long run see it move; CI logs and pipes get nothing.
        progress: std::io::stderr().is_terminal() && std::env::var_os("CI").is_none(),
    }
}

async fn run(config: &Path, out: &OutputArgs) -> Result<u8, AppError> {
    let report = app::run(config, &request(out)).await?;
    emit(&report, out).await
}

async fn emit(report: &Report, out: &OutputArgs) -> Result<u8, AppError> {
    let terminal = std::io::stdout().is_terminal();
    let format = match out.format {
        Some(FormatArg::Table) => Format::Table,
        Some(FormatArg::Json) => Format::Json,
        Some(FormatArg::Junit) => Format::Junit,
        Some(FormatArg::Prometheus) => Format::Prometheus,
        None if terminal || out.output.is_some() => Format::Table,
        None => Format::Json,
    };
    if let Some(path) = &out.junit_output {
        app::write_output(path, &app::render(report, Format::Junit, false))?;
    }
    if let Some(url) = &out.push {
        // Metrics that did not arrive are a monitoring gap, not a probe verdict: say so
        // loudly, keep the exit code the probes earned.
        if let Err(e) = app::push(url, report).await {
            eprintln!("warning: {e}");
        }
    }
    match &out.output {
        Some(path) => {
            let format = if out.format.is_none() {
                Format::Json
            } else {
                format
            };
            app::write_output(path, &app::render(report, format, false))?;
            print!("{}", app::render(report, Format::Table, terminal));
        }
        None => {
            let color = terminal && std::env::var_os("NO_COLOR").is_none();
            print!("{}", app::render(report, format, color));
        }
    }
    Ok(report.exit_code)
}

async fn sandbox(
    listen: String,
    state_dir: PathBuf,
    faults: Option<PathBuf>,
) -> Result<u8, AppError> {
    let mut options = iap_probe::sandbox::SandboxOptions::default();
    if let Some(path) = faults {
        options.faults = iap_probe::sandbox::load_faults(&path)?;
    }
    let running = iap_probe::sandbox::start(&listen, &state_dir, options).await?;
    let stop = wait_for_signal();
    let base = &running.base_url;
    println!("sandbox listening on {}", running.addr);
    println!("  apple   (App Store Server API)  {base}/inApps/...");
    println!("  google  (OAuth2 token)          {base}/token");
    println!("  google  (Play Developer API v3) {base}/androidpublisher/v3/...");
    println!("  backend (reference IAP backend) {base}/iap/...");
    println!("  state    {}", running.state_dir.display());
    println!(
        "  manifest {}",
        running.state_dir.join("sandbox.json").display()
    );
    println!(
        "Probe it: probe run --config {}",
        running.state_dir.join("probe.toml").display()
    );
    println!("Ctrl-C to stop.");
    stop.await;
    running.stop().await;
    eprintln!("sandbox stopped");
    Ok(0)
}

/// Installs the SIGINT/SIGTERM handlers now, not on first poll: a signal sent as soon as
/// the start-up message is out must stop the process cleanly, not kill it.
fn wait_for_signal() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            return Box::pin(async move {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            });
        }
    }
    Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
