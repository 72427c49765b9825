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

/// `/proc/<pid>/stat` as text: one `read` into a buffer it fits in (std's
/// `read_to_string` asks for its size, then reads in growing steps: six calls, not two).
fn read_stat(pid: i32) -> Option<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    let mut buf = vec![0u8; 1024];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).ok()
}

pub fn proc_info(pid: i32) -> Option<ProcInfo> {
    let stat = read_stat(pid)?;
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
