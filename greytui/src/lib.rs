//! `greytui`: the keyboard-driven dashboard and scripting client of `greyproxyd`, talking only
//! the public control protocol (`/ws`, crate `greyproxy-protocol`).
//!
//! Layers, from the wire up: [`paths`] finds the daemon and its token, [`client`] is one
//! control connection (over TCP, or over the stdio of `ssh HOST greyproxyd attach`: [`stdio`]),
//! [`hosts`] says which daemons a fleet is made of, [`link`] keeps one connection alive per
//! daemon for the dashboard (reconnects, routes replies), [`once`] runs the `--once` commands. The dashboard is an Elm-style split: [`app`] holds all
//! state and changes only in `App::update` (no I/O), [`ui`] draws it, `keymap` is the single
//! table of keys, and [`tui`] is the event loop that ties them to the terminal. `middlewares`
//! words the state of external middlewares and the badges of their decisions for both.
//!
//! Imports point one way: `ui` reads `app`, never the reverse; what both need (text in
//! [`format`](mod@format) and `middlewares`, screen geometry in `layout`, keys in `keymap`, a
//! conversation laid out as lines in `transcript`) sits below them.

pub mod app;
pub mod cli;
pub mod client;
pub(crate) mod curl;
pub mod format;
pub mod hosts;
pub(crate) mod keymap;
mod layout;
pub mod link;
pub(crate) mod llm_text;
pub(crate) mod middlewares;
pub(crate) mod notify;
pub mod once;
pub mod paths;
pub mod sample;
pub mod sample_llm;
pub mod stdio;
pub(crate) mod transcript;
pub mod tui;
pub mod ui;
