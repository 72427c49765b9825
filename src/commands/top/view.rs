//! Drawing one frame of `top` from a poll and the key state. Pure: a [`Screen`] in, cells
//! in a ratatui buffer out (the tests draw into a `TestBackend` of any size).
//!
//! Small terminals lose the least useful parts first: columns (LAST EXIT, RESTARTS,
//! UPTIME, MEMORY, CPU, PID in that order), then the log pane, then the task pane.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table, TableState, Wrap};

use super::data::{Child, Data, Supervisor};
use crate::agent::snapshot::TaskState;
use crate::commands::status::HEADER;

/// Everything one frame shows.
pub struct Screen<'a> {
    pub data: &'a Data,
    /// The selected child's index.
    pub selected: Option<usize>,
    /// The log pane shows the selected child's log.
    pub following: bool,
    pub help: bool,
    /// The result of the last action, a question, or the key hint.
    pub status_line: &'a str,
    /// Colours (not with `NO_COLOR` or `TERM=dumb`); bold and reverse stay.
    pub colour: bool,
}

/// Rows the task pane shows at most (its headline apart).
const TASK_ROWS: usize = 5;

/// Columns in the order they are kept when the width runs short.
const KEEP_ORDER: [usize; 8] = [0, 1, 2, 7, 6, 3, 4, 5];
/// The widest a NAME or STATE cell gets before it is cut.
const MAX_CELL: usize = 24;

pub const KEYS: &[(&str, &str)] = &[
    ("↑/↓ j/k", "select a child"),
    ("s", "stop it (asks y/n)"),
    ("t or S", "start it"),
    ("r", "restart it (asks y/n)"),
    ("l", "follow its log (Esc: back to the system log)"),
    ("p", "pause / resume tasks (the stop file .claude_stop)"),
    ("?", "this help (any key closes it)"),
    ("Ctrl+L", "redraw the whole screen"),
    ("q Ctrl+C", "quit"),
];

pub fn draw(frame: &mut Frame, s: &Screen) {
    let area = frame.area();
    if area.width < 20 || area.height < 3 {
        frame.render_widget(Paragraph::new("too small").wrap(Wrap { trim: true }), area);
        return;
    }
    let mut y = area.y;
    let mut line_at = |frame: &mut Frame, line: Line| {
        frame.render_widget(Paragraph::new(line), Rect::new(area.x, y, area.width, 1));
        y += 1;
    };
    let title = match &s.data.supervisor {
        Supervisor::Report { line, .. } => line.clone(),
        Supervisor::Missing(_) => "ai-employee".to_string(),
    };
    let mut head = vec![Span::styled(
        title,
        Style::default().add_modifier(Modifier::BOLD),
    )];
    if s.data.tasks.paused {
        head.push(Span::styled(" · tasks PAUSED", fg(s, Color::Yellow)));
    }
    line_at(frame, Line::from(head));
    // The status line is the last row; the panes share what lies between.
    let status = Rect::new(area.x, area.bottom() - 1, area.width, 1);
    let mut left = area.height.saturating_sub(2);

    let children_rows = match &s.data.supervisor {
        Supervisor::Report { children, .. } => children.len().max(1) as u16 + 2,
        Supervisor::Missing(m) => 1 + wrapped_height(m, area.width),
    };
    let children_h = children_rows.min(left);
    left -= children_h;
    let task_lines =
        1 + s.data.tasks.headline.is_some() as u16 + s.data.tasks.note.is_some() as u16;
    let tasks_want = task_lines + s.data.tasks.rows.len().min(TASK_ROWS) as u16;
    // The log pane is worth having from 3 rows (title and two lines); following it, it
    // comes before the task pane.
    let (tasks_h, log_h) = if s.following {
        let log_h = if left >= 3 {
            left.saturating_sub(2).max(3)
        } else {
            0
        };
        let tasks_h = (left - log_h).min(tasks_want);
        (tasks_h, left - tasks_h)
    } else {
        let tasks_h = if left >= 2 { tasks_want.min(left) } else { 0 };
        let rest = left - tasks_h;
        (tasks_h, if rest >= 3 { rest } else { 0 })
    };

    let children_area = Rect::new(area.x, y, area.width, children_h);
    let tasks_area = Rect::new(area.x, y + children_h, area.width, tasks_h);
    let log_area = Rect::new(area.x, y + children_h + tasks_h, area.width, log_h);
    draw_children(frame, s, children_area);
    draw_tasks(frame, s, tasks_area);
    draw_log(frame, s, log_area);

    let line = Line::from(Span::styled(
        s.status_line.to_string(),
        Style::default().add_modifier(Modifier::REVERSED),
    ));
    frame.render_widget(Paragraph::new(line), status);
    if s.help {
        draw_help(frame, area);
    }
}

fn pane(title: &str) -> Block<'_> {
    Block::new().borders(Borders::TOP).title(Span::styled(
        format!(" {title} "),
        Style::default().add_modifier(Modifier::BOLD),
    ))
}

fn wrapped_height(text: &str, width: u16) -> u16 {
    let w = width.max(1) as usize;
    text.chars().count().div_ceil(w).max(1) as u16
}

/// Text in `c`, when colours are on.
fn fg(s: &Screen, c: Color) -> Style {
    if s.colour {
        Style::default().fg(c)
    } else {
        Style::default()
    }
}

fn state_colour(s: &Screen, state: &str) -> Style {
    match state {
        "running" => fg(s, Color::Green),
        "backoff" | "starting" | "stopping" => fg(s, Color::Yellow),
        "fatal" | "needs-setup" => fg(s, Color::Red),
        _ => Style::default(),
    }
}

/// Which columns fit in `width`, in table order, with their widths.
pub fn columns(children: &[Child], width: u16) -> Vec<(usize, u16)> {
    let mut widths = HEADER.map(|h| h.chars().count());
    for c in children {
        for (w, cell) in widths.iter_mut().zip(&c.cells) {
            *w = (*w).max(cell.chars().count());
        }
    }
    widths[0] = widths[0].min(MAX_CELL);
    widths[1] = widths[1].min(MAX_CELL);
    let mut used = 0usize;
    let mut keep = Vec::new();
    for (n, &i) in KEEP_ORDER.iter().enumerate() {
        let need = widths[i] + if n == 0 { 0 } else { 1 };
        if used + need > width as usize {
            if n == 0 {
                // Not even NAME fits whole: show what does.
                keep.push((i, width));
            }
            break;
        }
        used += need;
        keep.push((i, widths[i] as u16));
    }
    keep.sort_unstable();
    keep
}

fn draw_children(frame: &mut Frame, s: &Screen, area: Rect) {
    if area.height == 0 {
        return;
    }
    let children = match &s.data.supervisor {
        Supervisor::Missing(message) => {
            let p = Paragraph::new(message.as_str())
                .style(fg(s, Color::Red))
                .wrap(Wrap { trim: true })
                .block(pane("children"));
            frame.render_widget(p, area);
            return;
        }
        Supervisor::Report { children, .. } => children,
    };
    if children.is_empty() {
        let p = Paragraph::new("(no processes in the table)").block(pane("children"));
        frame.render_widget(p, area);
        return;
    }
    let cols = columns(children, area.width);
    let header = Row::new(cols.iter().map(|&(i, _)| HEADER[i]))
        .style(Style::default().add_modifier(Modifier::DIM));
    let rows = children.iter().map(|c| {
        Row::new(cols.iter().map(|&(i, _)| {
            let cell = ratatui::widgets::Cell::from(c.cells[i].clone());
            if i == 1 {
                cell.style(state_colour(s, &c.state))
            } else {
                cell
            }
        }))
    });
    let table = Table::new(rows, cols.iter().map(|&(_, w)| Constraint::Length(w)))
        .header(header)
        .column_spacing(1)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .block(pane("children"));
    let mut state = TableState::default().with_selected(s.selected);
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_tasks(frame: &mut Frame, s: &Screen, area: Rect) {
    if area.height == 0 {
        return;
    }
    let t = &s.data.tasks;
    let mut lines = Vec::new();
    if let Some(h) = &t.headline {
        lines.push(Line::from(h.as_str()));
    }
    if let Some(n) = &t.note {
        lines.push(Line::styled(
            n.as_str(),
            Style::default().add_modifier(Modifier::DIM),
        ));
    }
    let id_w = t
        .rows
        .iter()
        .map(|r| r.id.chars().count())
        .max()
        .unwrap_or(0)
        .min(40);
    for r in t.rows.iter().take(TASK_ROWS) {
        let colour = match r.state {
            TaskState::Running => fg(s, Color::Green),
            TaskState::Pending => Style::default(),
            TaskState::NeedsReview => fg(s, Color::Red),
            _ => fg(s, Color::Yellow),
        };
        let id: String = r.id.chars().take(id_w).collect();
        lines.push(Line::from(vec![
            Span::raw(format!("{id:<id_w$} ")),
            Span::styled(r.state_text.clone(), colour),
            Span::styled(
                format!(" {}", r.score),
                Style::default().add_modifier(Modifier::DIM),
            ),
        ]));
    }
    frame.render_widget(Paragraph::new(lines).block(pane("tasks")), area);
}

fn draw_log(frame: &mut Frame, s: &Screen, area: Rect) {
    if area.height == 0 {
        return;
    }
    let log = &s.data.log;
    let title = if s.following {
        format!("{} (Esc: back)", log.title)
    } else {
        log.title.clone()
    };
    let shown = area.height.saturating_sub(1) as usize;
    let from = log.lines.len().saturating_sub(shown);
    let lines: Vec<Line> = log.lines[from..]
        .iter()
        .map(|l| Line::from(l.as_str()))
        .collect();
    frame.render_widget(Paragraph::new(lines).block(pane(&title)), area);
}

fn draw_help(frame: &mut Frame, area: Rect) {
    let key_w = KEYS
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| Line::from(format!("{k:<key_w$}  {what}")))
        .collect();
    let want_w = lines.iter().map(Line::width).max().unwrap_or(0) as u16 + 2;
    let w = want_w.min(area.width);
    let h = (lines.len() as u16 + 2).min(area.height);
    let rect = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    frame.render_widget(Clear, rect);
    let p = Paragraph::new(lines).block(Block::bordered().title(" keys "));
    frame.render_widget(p, rect);
}

#[cfg(test)]
mod tests {
    use super::super::data::{Log, TaskRow, Tasks};
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn data() -> Data {
        let child = |name: &str, state: &str, pid: &str| Child {
            name: name.into(),
            state: state.into(),
            cells: [
                name.into(),
                state.into(),
                pid.into(),
                "2m5s".into(),
                "0".into(),
                "-".into(),
                "3.1 MB".into(),
                "0.1%".into(),
            ],
        };
        Data {
            supervisor: Supervisor::Report {
                line: "ai-employee 0.1.0 · pid 42 · up 3m · healthy".into(),
                children: vec![
                    child("filesystem", "running", "4243"),
                    child("gmail", "backoff (12s)", "-"),
                ],
            },
            tasks: Tasks {
                paused: true,
                headline: Some("Tasks: 1 running (of 1), 1 pending".into()),
                note: None,
                rows: vec![TaskRow {
                    id: "EMAIL_1".into(),
                    state: TaskState::Running,
                    state_text: "running (pid 7)".into(),
                    score: "0.90".into(),
                }],
            },
            log: Log {
                title: "Logs/system.log".into(),
                lines: (0..50).map(|i| format!("line {i}")).collect(),
            },
        }
    }

    fn render(w: u16, h: u16, help: bool) -> String {
        let buf = buffer(w, h, help, true);
        let mut out = String::new();
        for y in 0..h {
            for x in 0..w {
                out.push_str(buf[(x, y)].symbol());
            }
            out.push('\n');
        }
        out
    }

    fn buffer(w: u16, h: u16, help: bool, colour: bool) -> ratatui::buffer::Buffer {
        let d = data();
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| {
            draw(
                f,
                &Screen {
                    data: &d,
                    selected: Some(1),
                    following: false,
                    help,
                    status_line: "q quit  ? help",
                    colour,
                },
            )
        })
        .unwrap();
        t.backend().buffer().clone()
    }

    #[test]
    fn no_colour_when_asked() {
        let coloured = buffer(100, 20, false, true);
        assert!(coloured.content().iter().any(|c| c.fg == Color::Green));
        let plain = buffer(100, 20, false, false);
        assert!(plain.content().iter().all(|c| c.fg == Color::Reset));
    }

    #[test]
    fn a_full_frame() {
        let s = render(100, 20, false);
        insta::assert_snapshot!(s);
        assert!(s.contains("tasks PAUSED"), "{s}");
        assert!(s.contains("LAST EXIT"), "{s}");
        assert!(s.contains("filesystem running"), "{s}");
        assert!(s.contains("EMAIL_1 running (pid 7) 0.90"), "{s}");
        assert!(s.contains("line 49"), "{s}");
        assert!(s.lines().last().unwrap().starts_with("q quit"), "{s}");
    }

    #[test]
    fn small_terminals_drop_columns_and_panes_never_panic() {
        let s = render(40, 12, false);
        insta::assert_snapshot!(s);
        assert!(s.contains("NAME"), "{s}");
        assert!(!s.contains("LAST EXIT"), "{s}");
        for w in 0..60 {
            for h in 0..25 {
                render(w, h, w % 2 == 0);
            }
        }
    }

    #[test]
    fn the_help_lists_every_key() {
        let s = render(80, 20, true);
        for (k, _) in KEYS {
            assert!(s.contains(k), "{k}: {s}");
        }
    }
}
