//! `ai-employee top [--interval 1s]`: a full-screen live view of the children, the task
//! queue and the log, with keys to stop, start and restart a child, follow its log and
//! pause tasks.
//!
//! One thread owns the screen and waits on a channel fed by the key reader, the signal
//! thread (SIGTERM, SIGHUP, SIGINT) and the actions (which run on their own thread, so a
//! slow restart never freezes the screen); between messages it sleeps until the next
//! poll. A frame is drawn only when the poll differs from the last one, after a key, an
//! action's result or a resize.
//!
//! Exit status: 0 on q or Ctrl+C, 128+N on signal N (the terminal restored first), 2 when
//! stdout is not a terminal (use `status --watch`), 1 when the terminal cannot be set up.

mod data;
mod term;
mod view;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use ai_employee_vault::exit_codes;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use super::control::{self, Verb};
use super::tasks::edit;
use data::{Data, Supervisor};

const HINT: &str = "q quit · ? keys · s stop · t start · r restart · l log · p pause";

enum Msg {
    Key(KeyEvent),
    Resize,
    /// The key reader failed (the terminal went away).
    InputGone(String),
    Signal(i32),
    /// An action finished: the line for the status line.
    Done(String),
}

pub fn run(vault: &Path, interval: Duration) -> i32 {
    if !std::io::stdout().is_terminal() {
        return super::fail(
            exit_codes::USAGE,
            "top needs a terminal; for scripts use `ai-employee status --watch` (or --json)",
        );
    }
    let (tx, rx) = mpsc::channel();
    // Signals first: a SIGTERM from now on reaches the loop (and the terminal is restored).
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGHUP, SIGINT]) {
        Ok(s) => s,
        Err(e) => return super::fail(exit_codes::FAILURE, format!("cannot handle signals: {e}")),
    };
    let handle = signals.handle();
    let signal_tx = tx.clone();
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if signal_tx.send(Msg::Signal(sig)).is_err() {
                break;
            }
        }
    });
    let mut guard = match term::Guard::enter() {
        Ok(g) => g,
        Err(e) => {
            handle.close();
            return super::fail(
                exit_codes::FAILURE,
                format!("cannot set up the terminal: {e}"),
            );
        }
    };
    let input_tx = tx.clone();
    std::thread::spawn(move || read_keys(&input_tx));
    let mut app = App::new(vault.to_path_buf(), tx);
    let code = app.run(&mut guard.terminal, &rx, interval);
    drop(guard);
    handle.close();
    if let Some(message) = app.input_error {
        return super::fail(
            exit_codes::FAILURE,
            format!("the terminal went away: {message}"),
        );
    }
    code
}

/// Blocks on the terminal; each key and resize goes to the loop.
fn read_keys(tx: &Sender<Msg>) {
    loop {
        let msg = match event::read() {
            Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => Msg::Key(k),
            Ok(Event::Resize(..)) => Msg::Resize,
            Ok(_) => continue,
            Err(e) => Msg::InputGone(e.to_string()),
        };
        let gone = matches!(msg, Msg::InputGone(_));
        if tx.send(msg).is_err() || gone {
            return;
        }
    }
}

struct App {
    vault: PathBuf,
    tx: Sender<Msg>,
    data: Option<Data>,
    /// The selected child, by name (the table's order can change on reload).
    selected: Option<String>,
    /// Following this child's log.
    follow: Option<String>,
    /// An action waiting for y/n.
    confirm: Option<(Verb, String)>,
    help: bool,
    status_line: String,
    input_error: Option<String>,
    colour: bool,
}

/// What a key asks of the loop.
enum Next {
    Redraw,
    /// Forget what the terminal shows and draw every cell.
    Repaint,
    Poll,
    Quit,
}

impl App {
    fn new(vault: PathBuf, tx: Sender<Msg>) -> App {
        App {
            vault,
            tx,
            data: None,
            selected: None,
            follow: None,
            confirm: None,
            help: false,
            status_line: HINT.to_string(),
            input_error: None,
            colour: super::status::Style::detect().colour,
        }
    }

    fn run(&mut self, terminal: &mut term::Tty, rx: &mpsc::Receiver<Msg>, every: Duration) -> i32 {
        let mut next_poll = Instant::now();
        let mut dirty = true;
        loop {
            if Instant::now() >= next_poll {
                let rows = terminal.size().map_or(50, |s| s.height as usize);
                let new = data::poll(&self.vault, self.follow.as_deref(), rows);
                if self.data.as_ref() != Some(&new) {
                    self.data = Some(new);
                    self.keep_selection();
                    dirty = true;
                }
                next_poll = Instant::now() + every;
            }
            if dirty {
                if let Some(d) = &self.data {
                    let screen = view::Screen {
                        data: d,
                        selected: self.selected_index(),
                        following: self.follow.is_some(),
                        help: self.help,
                        status_line: &self.status_line,
                        colour: self.colour,
                    };
                    if let Err(e) = terminal.draw(|f| view::draw(f, &screen)) {
                        self.input_error = Some(e.to_string());
                        return exit_codes::FAILURE;
                    }
                }
                dirty = false;
            }
            let wait = next_poll.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Msg::Key(k)) => match self.on_key(k) {
                    Next::Redraw => dirty = true,
                    Next::Repaint => {
                        // A failed clear shows in the draw that follows.
                        let _ = terminal.clear();
                        dirty = true;
                    }
                    Next::Poll => {
                        dirty = true;
                        next_poll = Instant::now();
                    }
                    Next::Quit => return exit_codes::OK,
                },
                Ok(Msg::Resize) => {
                    // The frame follows the new size (ratatui resizes on draw); the log
                    // pane may show more lines.
                    dirty = true;
                    next_poll = Instant::now();
                }
                Ok(Msg::InputGone(e)) => {
                    self.input_error = Some(e);
                    return exit_codes::FAILURE;
                }
                Ok(Msg::Signal(sig)) => return 128 + sig,
                Ok(Msg::Done(line)) => {
                    self.status_line = line;
                    dirty = true;
                    next_poll = Instant::now();
                }
                Err(RecvTimeoutError::Timeout) => {}
                // The loop holds a sender: not reached.
                Err(RecvTimeoutError::Disconnected) => return exit_codes::FAILURE,
            }
        }
    }

    fn children(&self) -> &[data::Child] {
        match self.data.as_ref().map(|d| &d.supervisor) {
            Some(Supervisor::Report { children, .. }) => children,
            _ => &[],
        }
    }

    fn selected_index(&self) -> Option<usize> {
        let name = self.selected.as_deref()?;
        self.children().iter().position(|c| c.name == name)
    }

    /// After a poll: the same child stays selected; the first one if it went away.
    fn keep_selection(&mut self) {
        if self.selected_index().is_none() {
            self.selected = self.children().first().map(|c| c.name.clone());
        }
    }

    fn select(&mut self, delta: isize) {
        let n = self.children().len();
        if n == 0 {
            return;
        }
        let at = self.selected_index().unwrap_or(0) as isize;
        let to = (at + delta).clamp(0, n as isize - 1) as usize;
        self.selected = Some(self.children()[to].name.clone());
    }

    fn on_key(&mut self, k: KeyEvent) -> Next {
        if k.modifiers.contains(KeyModifiers::CONTROL) {
            return match k.code {
                KeyCode::Char('c') => Next::Quit,
                // Redraw every cell (a screen garbled by another program's output).
                KeyCode::Char('l') => Next::Repaint,
                // No other Ctrl key acts (Ctrl+S is not `s`).
                _ => Next::Redraw,
            };
        }
        if self.help {
            self.help = false;
            return Next::Redraw;
        }
        if let Some((verb, name)) = self.confirm.take() {
            if matches!(k.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                self.act(verb, name);
            } else {
                self.status_line = format!("{} {name}: cancelled", verb_word(verb));
            }
            return Next::Redraw;
        }
        let selected = self.selected.clone();
        match (k.code, selected) {
            (KeyCode::Char('q'), _) => return Next::Quit,
            (KeyCode::Char('?'), _) => self.help = true,
            (KeyCode::Up | KeyCode::Char('k'), _) => self.select(-1),
            (KeyCode::Down | KeyCode::Char('j'), _) => self.select(1),
            (KeyCode::Char('s'), Some(name)) => self.ask(Verb::Stop, name),
            (KeyCode::Char('r'), Some(name)) => self.ask(Verb::Restart, name),
            (KeyCode::Char('t' | 'S'), Some(name)) => self.act(Verb::Start, name),
            (KeyCode::Char('l'), Some(name)) => {
                self.status_line = format!("following Logs/{name}.log; Esc: back");
                self.follow = Some(name);
                return Next::Poll;
            }
            (KeyCode::Esc, _) if self.follow.is_some() => {
                self.follow = None;
                self.status_line = HINT.to_string();
                return Next::Poll;
            }
            (KeyCode::Char('p'), _) => {
                self.toggle_pause();
                return Next::Poll;
            }
            (KeyCode::Char('s' | 'r' | 't' | 'S' | 'l'), None) => {
                self.status_line = "no child selected".to_string();
            }
            _ => return Next::Redraw,
        }
        Next::Redraw
    }

    fn ask(&mut self, verb: Verb, name: String) {
        self.status_line = format!("{} {name}? (y/n)", verb_word(verb));
        self.confirm = Some((verb, name));
    }

    /// Run the action on its own thread; its last line comes back as a message.
    fn act(&mut self, verb: Verb, name: String) {
        self.status_line = format!("{} {name}…", verb_word(verb));
        let vault = self.vault.clone();
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            let mut last = String::new();
            let line = match control::act(&vault, verb, &name, true, &mut |l| last = l.to_string())
            {
                Ok(()) => last,
                Err(f) => format!("{} {name} failed: {}", verb_word(verb), f.message),
            };
            // The loop may have ended meanwhile.
            let _ = tx.send(Msg::Done(line));
        });
    }

    fn toggle_pause(&mut self) {
        let paused = self.data.as_ref().is_some_and(|d| d.tasks.paused);
        let r = if paused {
            edit::remove_pause(&self.vault)
        } else {
            edit::write_pause(&self.vault, false)
        };
        self.status_line = match r {
            Ok(line) => line,
            Err(f) => f.message,
        };
    }
}

fn verb_word(v: Verb) -> &'static str {
    match v {
        Verb::Start => "start",
        Verb::Stop => "stop",
        Verb::Restart => "restart",
    }
}
