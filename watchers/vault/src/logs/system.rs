//! The tracing layer behind `Logs/system.log` and the console.
//!
//! `system.log` gets one line per event with every field:
//! `2026-02-16 18:30:15.123 WARN  gmail: exited with code 1 pid=12346`
//! The console gets the same event, shorter (`18:30:15 gmail: exited with code 1`), with
//! colour when stderr is a terminal and `NO_COLOR` is unset.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

use super::writer::Console;
use super::{LogFile, LogWriter, RotatingFile};

struct Sinks {
    /// `system.log`, written by the log writer's thread.
    file: Option<LogFile>,
    console: bool,
    color: bool,
    console_level: Level,
    console_time: &'static str,
}

pub struct SystemLogLayer {
    sinks: Mutex<Sinks>,
}

#[derive(Default)]
struct Fields {
    message: String,
    child: Option<String>,
    /// The other fields, `name` and value.
    rest: Vec<(&'static str, String)>,
}

impl Fields {
    /// ` name=value` for each other field, but those the message already says (`(pid
    /// 42)` and `pid=42` are one fact).
    fn rest(&self) -> String {
        let mut out = String::new();
        for (name, value) in &self.rest {
            if !self.message.contains(&format!("{name} {value}")) {
                // Writing into a String cannot fail.
                let _ = write!(out, " {name}={value}");
            }
        }
        out
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "child" => self.child = Some(value.to_string()),
            name => self.rest.push((name, value.to_string())),
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => {
                // Writing into a String cannot fail.
                let _ = write!(self.message, "{value:?}");
            }
            "child" => self.child = Some(format!("{value:?}")),
            name => self.rest.push((name, format!("{value:?}"))),
        }
    }
}

impl<S: Subscriber> Layer<S> for SystemLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        let mut f = Fields::default();
        event.record(&mut f);
        let now = chrono::Local::now();
        let who = f
            .child
            .as_deref()
            .map(|c| format!("{c}: "))
            .unwrap_or_default();
        let Ok(mut sinks) = self.sinks.lock() else {
            return;
        };
        let sinks = &mut *sinks;
        if let Some(file) = sinks.file.as_ref() {
            // Queued for the log writer's thread, never written here: a stalled disk must
            // not stop the thread that logs. What goes wrong with the file (it cannot be
            // written, the queue was full) the writer says on the console itself.
            let stamp = now.format("%Y-%m-%d %H:%M:%S%.3f");
            let line = format!(
                "{stamp} {:<5} {who}{}{}\n",
                level.as_str(),
                f.message,
                f.rest()
            );
            file.write(line.as_bytes());
        }
        if sinks.console && level <= sinks.console_level {
            let (pre, post) = if sinks.color {
                match level {
                    Level::ERROR => ("\x1b[31m", "\x1b[0m"),
                    Level::WARN => ("\x1b[33m", "\x1b[0m"),
                    _ => ("", ""),
                }
            } else {
                ("", "")
            };
            let line = format!(
                "{} {pre}{who}{}{post}\n",
                now.format(sinks.console_time),
                f.message
            );
            // A console that refuses a line leaves nowhere to say so.
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

/// Options for [`install`].
pub struct SystemLogOptions {
    /// The system log, handed to this log writer's thread.
    pub file: Option<(LogWriter, RotatingFile)>,
    pub console: bool,
    /// Most verbose level written (file and console); `AI_EMPLOYEE_LOG=debug` raises it.
    pub level: Level,
    /// Console lines carry the date too (a watcher's stderr becomes its log file).
    pub full_time: bool,
}

/// Whether console output should be coloured (stderr is a terminal, `NO_COLOR` unset).
pub fn use_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// Install the global subscriber. Returns false if one was already installed.
pub fn install(opts: SystemLogOptions) -> bool {
    // With a log file (the supervisor) the console shows at most info and the file has
    // the detail; without one (a watcher, whose stderr is its log) the console is the log.
    let console_level = if opts.file.is_some() {
        Level::INFO.min(opts.level)
    } else {
        opts.level
    };
    let color = use_color();
    let console_time = if opts.full_time {
        "%Y-%m-%d %H:%M:%S%.3f"
    } else {
        "%H:%M:%S"
    };
    let console = opts.console.then_some(Console {
        color,
        time: console_time,
    });
    let layer = SystemLogLayer {
        sinks: Mutex::new(Sinks {
            file: opts
                .file
                .map(|(writer, file)| writer.open_system(file, console)),
            console: opts.console,
            color,
            console_level,
            console_time,
        }),
    };
    let filter = tracing_subscriber::filter::LevelFilter::from_level(opts.level);
    let subscriber = tracing_subscriber::registry().with(layer.with_filter(filter));
    tracing::subscriber::set_global_default(subscriber).is_ok()
}

/// The level asked for in `AI_EMPLOYEE_LOG` (error, warn, info, debug, trace), default info.
pub fn level_from_env() -> Level {
    std::env::var("AI_EMPLOYEE_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(Level::INFO)
}
