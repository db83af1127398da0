//! The machine lanmeter runs on, as the System page shows it: CPU use, memory, the disk holding
//! the database, CPU temperature and uptime (through the sysinfo crate, which only this file uses).
//!
//! The host name comes from gethostname(2) and the disk from statvfs(2) on the database's folder,
//! not from /proc/sys/kernel/hostname and /proc/mounts: both work in the service's sandbox
//! (ProtectHostname= keeps the host's name in a private UTS namespace) and need no mount table.
//! CPU and memory have no such source (sysinfo(2) knows no page cache), so the unit keeps
//! /proc/stat and /proc/meminfo visible (ProcSubset=all, systemd/lanmeter.service).
//!
//! It only reads; every figure it cannot read on this host is `None`, never an error, so the page
//! still renders on a machine without thermal sensors.

use std::path::Path;
use std::sync::{LazyLock, Mutex};

/// One reading of the host.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostInfo {
    /// Average over all cores since the previous reading, percent.
    pub cpu_percent: Option<f32>,
    pub cpus: usize,
    pub memory_used: u64,
    pub memory_total: u64,
    /// The file system the database lives on: (available, total) bytes.
    pub disk: Option<(u64, u64)>,
    /// The hottest sensor whose label names the CPU (or the only sensor), °C.
    pub cpu_temp_c: Option<f32>,
    pub uptime_secs: Option<u64>,
    pub host_name: Option<String>,
    /// 1-minute load average.
    pub load1: Option<f64>,
}

/// Kept between readings: CPU use is the difference of two refreshes.
/// A std Mutex: held only for a refresh (microseconds to a few ms), never across an await.
static SYSTEM: LazyLock<Mutex<Option<sysinfo::System>>> =
    LazyLock::new(|| Mutex::new(sysinfo::System::new().ok()));

/// Takes the first CPU reading, which later ones are measured against: the web server calls it
/// as it starts, so the System page's first view does not wait. Blocking (reads /proc).
pub fn prime() {
    if let Some(sys) = SYSTEM.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        baseline(sys);
    }
}

/// The first CPU reading, unless there is one.
fn baseline(sys: &mut sysinfo::System) {
    if sys.cpus().is_empty() {
        sys.refresh_cpu_usage();
    }
}

/// Reads the host now. Blocking (reads /proc and /sys): call it off the async workers. A call
/// before any reading (no [`prime`]) waits sysinfo's minimum interval so that even it reports a
/// CPU figure.
pub fn read(db_path: &Path) -> HostInfo {
    let mut info = HostInfo::default();
    {
        let mut guard = SYSTEM.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sys) = guard.as_mut() {
            if sys.cpus().is_empty() {
                sys.refresh_cpu_usage();
                std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
            }
            sys.refresh_cpu_usage();
            sys.refresh_memory();
            info.cpus = sys.cpus().len();
            info.cpu_percent = (!sys.cpus().is_empty()).then(|| sys.global_cpu_usage());
            info.memory_used = sys.used_memory();
            info.memory_total = sys.total_memory();
        }
    }
    info.uptime_secs = sysinfo::System::uptime().ok();
    info.host_name = host_name();
    info.load1 = sysinfo::System::load_average().ok().map(|l| l.one);
    if let Ok(components) = sysinfo::Components::new_with_refreshed_list() {
        let temps: Vec<(String, f32)> = components
            .iter()
            .filter_map(|c| Some((c.label().to_ascii_lowercase(), c.temperature()?)))
            .filter(|(_, t)| t.is_finite())
            .collect();
        let cpu_like = |l: &str| {
            ["cpu", "package", "k10temp", "coretemp", "soc", "tctl"]
                .iter()
                .any(|k| l.contains(k))
        };
        info.cpu_temp_c = temps
            .iter()
            .filter(|(l, _)| cpu_like(l))
            .map(|(_, t)| *t)
            .reduce(f32::max)
            .or_else(|| (temps.len() == 1).then(|| temps[0].1));
    }
    info.disk = disk_space(db_path);
    info
}

/// This machine's name as gethostname(2) reports it; `None` if it is empty or not UTF-8.
pub fn host_name() -> Option<String> {
    let name = nix::unistd::gethostname().ok()?.into_string().ok()?;
    (!name.is_empty()).then_some(name)
}

/// (available to unprivileged users, total) bytes of the file system holding `db_path`: statvfs(2)
/// on the nearest existing folder at or above the database, so a database not created yet still
/// reports the disk it will be written to.
fn disk_space(db_path: &Path) -> Option<(u64, u64)> {
    let mut dir = db_path.parent()?;
    while !dir.exists() {
        dir = dir.parent()?;
    }
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    // fsblkcnt_t and c_ulong are 32 bits on armhf (Raspberry Pi OS 32-bit), 64 bits here.
    #[allow(clippy::useless_conversion)]
    let (avail, total, frag) = (
        u64::from(st.blocks_available()),
        u64::from(st.blocks()),
        u64::from(st.fragment_size()),
    );
    Some((avail.saturating_mul(frag), total.saturating_mul(frag)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        std::fs::write(&db, b"").unwrap();
        let h = super::read(&db);
        assert!(h.memory_total > 0 && h.memory_used <= h.memory_total);
        assert!(h.cpus > 0);
        assert!(h.uptime_secs.is_some());
        let (avail, total) = h.disk.expect("the temp dir's file system");
        assert!(avail <= total && total > 0);
        // The kernel's own record of the name, independent of gethostname(2)'s path.
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(h.host_name.as_deref(), Some(kernel.trim()));
    }

    /// After `prime` (the web server calls it as it starts) a reading has its baseline, so the
    /// System page's first view takes no wait.
    #[test]
    fn prime_takes_the_baseline_a_first_reading_would_wait_for() {
        let Ok(mut sys) = sysinfo::System::new() else {
            return;
        };
        assert!(sys.cpus().is_empty(), "no reading yet: read() would sleep");
        super::baseline(&mut sys);
        assert!(!sys.cpus().is_empty(), "primed: read() will not sleep");
        super::prime();
    }

    #[test]
    fn disk_of_a_database_not_created_yet_is_its_nearest_folders() {
        let dir = tempfile::tempdir().unwrap();
        let (_, total) = super::disk_space(&dir.path().join("a/b/x.db")).expect("statvfs");
        let (_, same) = super::disk_space(&dir.path().join("x.db")).expect("statvfs");
        assert_eq!(total, same);
        assert!(total > 0);
    }
}
