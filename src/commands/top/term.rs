//! The terminal for `top`: raw mode and the alternate screen on the way in, and the way
//! out taken on every exit path (the guard's drop, a panic, a signal via the event loop).

use std::io::{self, Stdout, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::{cursor, execute, terminal};

pub type Tty = Terminal<CrosstermBackend<Stdout>>;

/// The terminal is in raw mode on the alternate screen. Restoring twice would leave the
/// alternate screen twice, and the second leave moves the cursor back to where the first
/// enter saved it (over what was printed meanwhile, e.g. a panic's message).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Owns the terminal while `top` runs; dropping it restores the terminal.
pub struct Guard {
    pub terminal: Tty,
}

impl Guard {
    /// Raw mode, the alternate screen, no cursor; a panic restores the terminal before the
    /// message is printed (so it is readable, and the shell usable).
    pub fn enter() -> io::Result<Guard> {
        terminal::enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        if let Err(e) = execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide) {
            restore();
            return Err(e);
        }
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        match Terminal::new(CrosstermBackend::new(io::stdout())) {
            Ok(terminal) => Ok(Guard { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

/// Leave the alternate screen, show the cursor, leave raw mode; once (the panic hook and
/// then the guard's drop may both call it).
pub fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let mut out = io::stdout();
    // Each step on its own: one failing (a closed terminal) must not skip the others.
    let _ = execute!(out, terminal::LeaveAlternateScreen, cursor::Show);
    let _ = terminal::disable_raw_mode();
    let _ = out.flush();
}
