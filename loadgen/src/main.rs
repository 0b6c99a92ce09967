//! `ringturn-loadgen`: see `ringturn-loadgen --help`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Parser as _;
use ringturn_loadgen::cli::{Cli, Command};
use ringturn_loadgen::config::Mode;
use ringturn_loadgen::{compare, net, report::Report};

/// Writes `--json` and `--report` (HTML, or SVG by extension) when asked for.
fn write_files(
    json: Option<&Path>,
    html: Option<&Path>,
    to_json: impl FnOnce() -> serde_json::Result<String>,
    to_svg: impl FnOnce() -> String,
    to_html: impl FnOnce() -> String,
) -> Result<()> {
    if let Some(p) = json {
        let text = to_json().context("cannot encode the report")?;
        std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    if let Some(p) = html {
        let svg = p.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg"));
        let text = if svg { to_svg() } else { to_html() };
        std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

fn write_outputs(report: &Report, json: Option<&Path>, html: Option<&Path>) -> Result<()> {
    write_files(
        json,
        html,
        || report.to_json(),
        || report.to_svg(),
        || report.to_html(),
    )
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    net::install_interrupt_handler();
    let mode = match &cli.command {
        Command::Relay(_) => Mode::Relay,
        Command::Pair(_) => Mode::Pair,
        Command::Allocate(_) => Mode::Allocate,
        Command::Binding(_) => Mode::Binding,
        Command::Hold(args) => {
            let report = ringturn_loadgen::hold::run(args)?;
            print!("{}", report.table());
            if let Some(p) = &args.json {
                let text = serde_json::to_string_pretty(&report).context("cannot encode")?;
                std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?;
                eprintln!("wrote {}", p.display());
            }
            if report.allocated == 0 {
                anyhow::bail!("no allocation was made");
            }
            return Ok(());
        }
        Command::Soak(args) => {
            let report = ringturn_loadgen::soak::run(args)?;
            print!("{}", report.table());
            write_files(
                args.load.json.as_deref(),
                args.load.report.as_deref(),
                || report.to_json(),
                || report.to_svg(),
                || report.to_html(),
            )?;
            if report.relay.clients_ready == 0 {
                anyhow::bail!("no relay client finished setup");
            }
            return Ok(());
        }
        Command::Compare(args) => {
            let cmp = compare::main(args)?;
            print!("{}", cmp.table());
            if let Some(p) = &args.json {
                let text = serde_json::to_string_pretty(&cmp).context("cannot encode")?;
                std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?;
                eprintln!("wrote {}", p.display());
            }
            if let Some(p) = &args.markdown {
                std::fs::write(p, cmp.markdown())
                    .with_context(|| format!("cannot write {}", p.display()))?;
                eprintln!("wrote {}", p.display());
            }
            if let Some(p) = &args.report {
                std::fs::write(p, cmp.html())
                    .with_context(|| format!("cannot write {}", p.display()))?;
                eprintln!("wrote {}", p.display());
            }
            if cmp.rows.is_empty() {
                anyhow::bail!("no scenario produced a result");
            }
            return Ok(());
        }
    };
    let Some(args) = cli.command.load_args() else {
        return Ok(());
    };
    let cfg = args.to_config(mode)?;
    let report = ringturn_loadgen::run(cfg)?;
    print!("{}", report.table());
    write_outputs(&report, args.json.as_deref(), args.report.as_deref())?;
    if report.clients_ready == 0 {
        anyhow::bail!("no client finished setup (see the failures above)");
    }
    Ok(())
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringturn-loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}
