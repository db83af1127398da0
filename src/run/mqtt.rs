//! The MQTT threads (`mqtt_host` set): the connection driver and the publisher of
//! [`crate::mqtt`], started here and stopped by the daemon's stop flag.
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// The running MQTT threads.
pub struct MqttRun {
    publisher: std::thread::JoinHandle<()>,
}

impl MqttRun {
    /// Starts the threads when `mqtt_host` is set; `None` when MQTT is off or a thread cannot
    /// start (logged: MQTT is an extra, the daemon runs on without it).
    pub fn start(
        cfg: &crate::config::Config,
        db: PathBuf,
        stop: Arc<AtomicBool>,
    ) -> Option<MqttRun> {
        let (driver, publisher) = crate::mqtt::setup(cfg, db)?;
        let broker = cfg.mqtt_host.clone().unwrap_or_default();
        let conn = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("mqtt-conn".into())
                .spawn(move || driver.run(&stop))
        };
        if let Err(e) = conn {
            tracing::error!(error = %e, "cannot start the MQTT connection thread; MQTT is off");
            return None;
        }
        match std::thread::Builder::new()
            .name("mqtt".into())
            .spawn(move || publisher.run(&stop))
        {
            Ok(publisher) => {
                tracing::info!(%broker, "Home Assistant MQTT discovery on");
                Some(MqttRun { publisher })
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start the MQTT thread; MQTT is off");
                None
            }
        }
    }

    /// Waits for the publisher (it stops on the stop flag and disconnects). The connection
    /// thread is not joined: it may sit in a connect attempt to an unreachable broker for a few
    /// seconds, and ends by itself once the client is gone.
    pub fn join(self) {
        if self.publisher.join().is_err() {
            tracing::error!("the MQTT thread panicked");
        }
    }
}
