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
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::app::{App, Effect, HostId, Msg, Tag};
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

/// The links to the daemons: one (today's single-daemon dashboard) or one per host of a
/// fleet, whose events arrive on one channel tagged with the host.
struct Links {
    senders: Vec<mpsc::Sender<link::Request<Tag>>>,
    events: mpsc::Receiver<(HostId, LinkEvent<Tag>)>,
    tasks: Vec<JoinHandle<()>>,
}

impl Links {
    /// Starts one link per resolver. Each link has its own task and backoff, so a host that is
    /// down or slow never delays the others.
    fn spawn<F, E>(resolvers: Vec<F>) -> Links
    where
        F: Fn() -> Result<E, String> + Send + 'static,
        E: Into<crate::client::Target> + Send + 'static,
    {
        // Bounded like a single link's channel: a UI that falls behind makes links stop reading.
        let (tx, events) = mpsc::channel(4096);
        let mut senders = Vec::new();
        let mut tasks = Vec::new();
        for (i, resolve) in resolvers.into_iter().enumerate() {
            let (req_tx, mut rx, task) = link::spawn(resolve);
            senders.push(req_tx);
            tasks.push(task);
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(ev) = rx.recv().await {
                    if tx.send((i, ev)).await.is_err() {
                        return;
                    }
                }
            }));
        }
        Links {
            senders,
            events,
            tasks,
        }
    }

    /// Hands a command to host `host`'s link without waiting; `Err` gives it back.
    // The request is handed back as it came, to fail it in place: boxing it would only move it.
    #[allow(clippy::result_large_err)]
    fn send(&self, host: HostId, r: link::Request<Tag>) -> Result<(), link::Request<Tag>> {
        match self.senders.get(host) {
            Some(s) => s.try_send(r).map_err(|e| match e {
                TrySendError::Full(r) | TrySendError::Closed(r) => r,
            }),
            None => Err(r),
        }
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Runs the dashboard until the operator quits or a termination signal arrives.
pub async fn run(cli: &Cli) -> anyhow::Result<()> {
    if crate::hosts::is_fleet(cli) {
        let hosts = crate::hosts::from_cli(cli, &paths::process_env)?;
        let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
        let resolvers: Vec<_> = hosts
            .into_iter()
            .map(|h| {
                let target = h.target;
                move || Ok::<_, String>(target.clone())
            })
            .collect();
        return dashboard(cli, Links::spawn(resolvers), &names).await;
    }
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
    dashboard(cli, Links::spawn(vec![resolve]), &[]).await
}

/// The event loop over `links`; `names` are the hosts' (empty: the single daemon).
async fn dashboard(cli: &Cli, mut links: Links, names: &[String]) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let desktop = !cli.no_notify && notify::session_bus_present(&paths::process_env);

    let mut guard = TerminalGuard::enter()?;
    let size = guard.terminal.size().context("terminal size")?;
    let mut app = App::new(SystemTime::now(), (size.width, size.height), desktop).with_hosts(names);
    let mut keys = EventStream::new();
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_frame = Instant::now() - FRAME;

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
            Some((h, ev)) = links.events.recv() => {
                let mut fx = app.update(Msg::Host(h, ev));
                for _ in 0..BATCH {
                    match links.events.try_recv() {
                        Ok((h, ev)) => fx.extend(app.update(Msg::Host(h, ev))),
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
            _ = clock.tick() => {
                // A link task ends only by panicking while the UI lives: say so rather than
                // show a frozen dashboard.
                if links.tasks.iter().any(JoinHandle::is_finished) {
                    drop(guard);
                    anyhow::bail!("a daemon link stopped unexpectedly");
                }
                app.update(Msg::Tick(SystemTime::now()))
            }
            _ = term.recv() => break,
            _ = hup.recv() => break,
            _ = int.recv() => break,
        };
        for e in effects {
            match e {
                Effect::Send(r) => send(&mut app, &links, 0, r),
                Effect::SendTo(h, r) => send(&mut app, &links, h, r),
                Effect::Bell => notify::bell(&mut std::io::stdout()),
                Effect::Notify { summary, body } => notify::desktop(&summary, &body),
                Effect::Quit => {}
                Effect::WriteFile { path, contents } => {
                    let result = std::fs::write(&path, contents).map_err(|e| e.to_string());
                    app.update(Msg::Wrote { path, result });
                }
                Effect::Clipboard(text) => notify::clipboard(&mut std::io::stdout(), &text),
            }
        }
        if app.quit {
            break;
        }
    }
    drop(guard);
    drop(links);
    Ok(())
}

/// Hands a command to a host's link; never blocks the UI on the link (it may itself wait for
/// the UI to read).
fn send(app: &mut App, links: &Links, host: HostId, r: link::Request<Tag>) {
    if let Err(r) = links.send(host, r) {
        let failed = LinkEvent::Reply {
            tag: r.tag,
            outcome: Err("too many commands in flight; try again".into()),
        };
        app.update(Msg::Host(host, failed));
    }
}
