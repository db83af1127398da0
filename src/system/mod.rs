//! The host system around lanmeter: the service manager (systemd notifications and watchdog), the
//! process's memory bounds and
//! `lanmeter doctor`'s checks of what a working installation needs.
//!
//! It reads the host's state and reports on it; it must never change the host's configuration
//! (the doctor prints fixes, it does not apply them) and never touch the packet path.
pub mod doctor;
pub mod host;
pub mod memory;
pub mod notify;
