use super::{ProcInfo, RunState};

fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 { v as u64 } else { 4096 }
}

fn clock_ticks() -> u64 {
    // SAFETY: as above.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 { v as u64 } else { 100 }
}

pub fn proc_info(pid: i32) -> Option<ProcInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // f[0] is field 3 (state); field N is f[N - 3].
    let state = match f.first()?.as_bytes().first()? {
        b'Z' | b'X' => RunState::Zombie,
        b'T' | b't' => RunState::Stopped,
        _ => RunState::Running,
    };
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let start_time: u64 = f.get(19)?.parse().ok()?;
    let rss_pages: u64 = f.get(21)?.parse().ok()?;
    Some(ProcInfo {
        state,
        rss: rss_pages.saturating_mul(page_size()),
        start_time,
        cpu_ns: utime
            .saturating_add(stime)
            .saturating_mul(1_000_000_000 / clock_ticks()),
    })
}
