//! The dashboard's event loop: one `select!` over terminal input, the daemon link, a clock and
//! termination signals. Messages go through [`App::update`]; its effects are carried out here.
//!
//! Frames are drawn only when something changed, at most every `FRAME`; link events are
//! drained in batches so that a burst of events costs one frame, not one per event. The
//! terminal is restored on every way out: normal exit, error, SIGTERM/SIGHUP/SIGINT, panic
//! (ratatui's hook) and a panicking link task.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use crossterm::event::{Event, EventStream, KeyEventKind};
use futures_util::StreamExt;
use ratatui::DefaultTerminal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::Instant;

use crate::app::{App, Effect, Msg};
use crate::cli::Cli;
use crate::link::{self, LinkEvent};
use crate::{notify, paths, ui};

/// Shortest time between two frames (about 30 frames per second).
pub(crate) const FRAME: Duration = Duration::from_millis(33);

/// Most link events applied before the next frame.
const BATCH: usize = 2048;

/// Raw mode and the alternate screen for as long as it lives.
struct TerminalGuard {
    terminal: DefaultTerminal,
}

impl TerminalGuard {
    fn enter() -> anyhow::Result<TerminalGuard> {
        // try_init also installs a panic hook that restores the terminal before the message.
        let terminal = ratatui::try_init().context("cannot set up the terminal")?;
        Ok(TerminalGuard { terminal })
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Runs the dashboard until the operator quits or a termination signal arrives.
pub async fn run(cli: &Cli) -> anyhow::Result<()> {
    let (url, token_file, state_dir) = (
        cli.single_url().map(str::to_string),
        cli.single_token_file().map(std::path::Path::to_path_buf),
        cli.state_dir.clone(),
    );
    let resolve = move || {
        paths::endpoint(
            url.as_deref(),
            token_file.as_deref(),
            state_dir.as_deref(),
            &paths::process_env,
        )
        .map(|(ep, _)| ep)
        .map_err(|e| e.to_string())
    };
    let (req_tx, mut link_rx, link_task) = link::spawn(resolve);
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let desktop = !cli.no_notify && notify::session_bus_present(&paths::process_env);

    let mut guard = TerminalGuard::enter()?;
    let size = guard.terminal.size().context("terminal size")?;
    let mut app = App::new(SystemTime::now(), (size.width, size.height), desktop);
    let mut keys = EventStream::new();
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_frame = Instant::now() - FRAME;
    tokio::pin!(link_task);

    loop {
        let effects = tokio::select! {
            ev = keys.next() => match ev {
                Some(Ok(Event::Key(k))) if k.kind == KeyEventKind::Press => app.update(Msg::Key(k)),
                Some(Ok(Event::Resize(w, h))) => {
                    guard.terminal.autoresize().context("resize")?;
                    app.update(Msg::Resize(w, h))
                }
                Some(Ok(_)) => Vec::new(),
                Some(Err(e)) => return Err(e).context("reading the terminal"),
                None => break,
            },
            Some(ev) = link_rx.recv() => {
                let mut fx = app.update(Msg::Link(ev));
                for _ in 0..BATCH {
                    match link_rx.try_recv() {
                        Ok(ev) => fx.extend(app.update(Msg::Link(ev))),
                        Err(_) => break,
                    }
                }
                fx
            }
            _ = tokio::time::sleep_until(last_frame + FRAME), if app.dirty => {
                guard.terminal.draw(|f| ui::draw(f, &app)).context("drawing")?;
                app.dirty = false;
                last_frame = Instant::now();
                Vec::new()
            }
            _ = clock.tick() => app.update(Msg::Tick(SystemTime::now())),
            _ = term.recv() => break,
            _ = hup.recv() => break,
            _ = int.recv() => break,
            r = &mut link_task => {
                drop(guard);
                anyhow::bail!("the daemon link stopped: {r:?}");
            }
        };
        for e in effects {
            match e {
                Effect::Send(r) => match req_tx.try_send(r) {
                    Ok(()) => {}
                    // Never block the UI on the link (it may itself wait for the UI to read).
                    Err(TrySendError::Full(r) | TrySendError::Closed(r)) => {
                        let failed = LinkEvent::Reply {
                            tag: r.tag,
                            outcome: Err("too many commands in flight; try again".into()),
                        };
                        app.update(Msg::Link(failed));
                    }
                },
                Effect::Bell => notify::bell(&mut std::io::stdout()),
                Effect::Notify { summary, body } => notify::desktop(&summary, &body),
                Effect::Quit => {}
            }
        }
        if app.quit {
            break;
        }
    }
    drop(guard);
    link_task.abort();
    Ok(())
}
