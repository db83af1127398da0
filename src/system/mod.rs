//! The host system around lanmeter: the service manager (systemd notifications and watchdog), the
//! process's memory bounds and `lanmeter doctor`'s checks of what a working installation needs.
//!
//! It reads the host's state and reports on it. It changes the host only where a person asks for
//! it by name (`lanmeter doctor --fix`: receive offloads off on the capture interface) and must
//! never touch the packet path.
pub mod doctor;
pub mod host;
pub mod memory;
pub mod notify;
