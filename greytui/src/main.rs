//! `greytui`: the dashboard, or one `--once` command for scripts (see `greytui --help` and
//! docs/greytui.md). Exit codes with `--once`: 0 done, 1 refused by the daemon, 2 usage,
//! 3 cannot connect or unauthorized.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use greytui::cli::{Cli, OnceCmd};
use greytui::once;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // clap: 0 for --help/--version, 2 for usage errors.
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    // Generated from the same clap definition; no daemon needed.
    match &cli.command {
        Some(OnceCmd::Completions { shell }) => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "greytui",
                &mut std::io::stdout(),
            );
            return ExitCode::SUCCESS;
        }
        Some(OnceCmd::Man) => {
            return match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("greytui: {e}");
                    ExitCode::from(1)
                }
            };
        }
        _ => {}
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("greytui: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    if cli.once || cli.command.is_some() {
        let Some(cmd) = cli.command.clone() else {
            eprintln!(
                "greytui: --once needs a command: allow, deny, dismiss, pending, rules, status, middlewares, conversations, conversation, calls, usage or watch"
            );
            return ExitCode::from(once::ExitCode::Usage as u8);
        };
        let mut out = std::io::stdout();
        return match rt.block_on(once::run(&cli, &cmd, &mut out)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(f) => {
                eprintln!("greytui: {}", f.message);
                ExitCode::from(f.code as u8)
            }
        };
    }
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        eprintln!("greytui: the dashboard needs a terminal; scripts use --once (see --help)");
        return ExitCode::from(once::ExitCode::Usage as u8);
    }
    match rt.block_on(greytui::tui::run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("greytui: {e:#}");
            ExitCode::from(1)
        }
    }
}
