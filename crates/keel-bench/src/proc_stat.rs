//! CPU time and memory of a process tree, read from /proc.

/// Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// (parent pid, utime + stime in ticks) from /proc/<pid>/stat.
fn stat(pid: u32) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields resume after its closing paren.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) … utime(11) stime(12).
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| stat(*p).is_some_and(|(ppid, _)| ppid == pid))
        .collect()
}

/// CPU seconds (user + system) used so far by `pid` and its direct children (nginx workers).
pub fn cpu_seconds(pid: u32) -> f64 {
    let own = stat(pid).map_or(0, |(_, t)| t);
    let kids: u64 = children(pid)
        .into_iter()
        .filter_map(|c| stat(c).map(|(_, t)| t))
        .sum();
    (own + kids) as f64 / TICKS_PER_SEC
}

/// Resident memory of `pid` and its direct children, in KiB.
pub fn tree_rss_kib(pid: u32) -> u64 {
    std::iter::once(pid)
        .chain(children(pid))
        .filter_map(crate::rss_kib)
        .sum()
}
