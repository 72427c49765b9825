use super::{ProcInfo, RunState};

pub fn proc_info(pid: i32) -> Option<ProcInfo> {
    // SAFETY: proc_pidinfo writes at most `size` bytes into the zeroed struct we own.
    let bsd: libc::proc_bsdinfo = unsafe {
        let mut info: libc::proc_bsdinfo = std::mem::zeroed();
        let size = std::mem::size_of::<libc::proc_bsdinfo>() as i32;
        let n = libc::proc_pidinfo(
            pid,
            libc::PROC_PIDTBSDINFO,
            0,
            (&mut info as *mut libc::proc_bsdinfo).cast(),
            size,
        );
        if n != size {
            return None;
        }
        info
    };
    // SAFETY: as above, for the task info struct.
    let task: libc::proc_taskinfo = unsafe {
        let mut info: libc::proc_taskinfo = std::mem::zeroed();
        let size = std::mem::size_of::<libc::proc_taskinfo>() as i32;
        let n = libc::proc_pidinfo(
            pid,
            libc::PROC_PIDTASKINFO,
            0,
            (&mut info as *mut libc::proc_taskinfo).cast(),
            size,
        );
        if n != size {
            info = std::mem::zeroed();
        }
        info
    };
    let state = match bsd.pbi_status {
        5 => RunState::Zombie,  // SZOMB
        4 => RunState::Stopped, // SSTOP
        _ => RunState::Running,
    };
    Some(ProcInfo {
        state,
        rss: task.pti_resident_size,
        start_time: bsd
            .pbi_start_tvsec
            .saturating_mul(1_000_000)
            .saturating_add(bsd.pbi_start_tvusec),
        cpu_ns: task.pti_total_user.saturating_add(task.pti_total_system),
    })
}
