//! History maintenance and the nightly backup, on the daemon's schedule.
//!
//! Every [`MAINTENANCE_INTERVAL`] (and one flush interval after the start): a rollup and
//! retention round is queued into the next flush's transaction, the damage record beside the
//! database is reread, and the nightly backup is started on its own thread (with its own
//! connection, so flushes go on) once the local clock reaches `backup_hour`.

use super::{Ctx, Periodic};
use crate::config::Config;
use crate::flush::Flusher;
use crate::store::backup;
use crate::store::health::SharedHealth;
use crate::store::rollup::{MaintenanceReport, Retention};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the history maintenance (rollups, retention) and the nightly-backup clock are
/// checked. A rollup round only writes when a step of the open hour has settled (four times an
/// hour), and it rides on the flush's commit, so a round costs at most a few pages.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(300);

/// The schedule and the backup thread between rounds.
pub struct Maintenance {
    next: Instant,
    tz: jiff::tz::TimeZone,
    backups: BackupSchedule,
}

impl Maintenance {
    /// The first round comes `first` after `now` (one flush interval: the history is rolled up
    /// soon after a start, not five minutes later).
    pub fn new(now: Instant, first: Duration, tz: jiff::tz::TimeZone) -> Maintenance {
        Maintenance {
            next: now + first,
            tz,
            backups: BackupSchedule::default(),
        }
    }
}

impl Periodic for Maintenance {
    fn tick(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        if now < self.next {
            return;
        }
        self.next = now + MAINTENANCE_INTERVAL;
        maintain(
            ctx.flusher,
            &self.tz,
            &Retention::from_config(ctx.cfg),
            ctx.health,
        );
        // Remote endpoints (issue 29): retention and the per-hour bound. Rows exist only while
        // the setting was on; running it anyway deletes old ones after it is turned off.
        let keep = i64::from(ctx.cfg.keep_services_days) * 86_400;
        match ctx
            .flusher
            .store_mut()
            .maintain_remotes(keep, jiff::Timestamp::now().as_second())
        {
            Ok(r) if r.deleted + r.folded > 0 => tracing::info!(
                deleted = r.deleted,
                folded = r.folded,
                "remote endpoints maintenance"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "remote endpoints maintenance failed; retried later")
            }
        }
        ctx.health.read_damage(ctx.db);
        if ctx.cfg.backup_keep > 0 {
            nightly_backup(ctx.cfg, &self.tz, ctx.db, ctx.health, &mut self.backups);
        }
    }

    /// A backup still being written is waited for: stopping must not leave half a file.
    fn stop(&mut self) {
        if let Some(job) = self.backups.job.take() {
            // The handle of a finished backup stays here until the next maintenance round.
            if !job.is_finished() {
                tracing::info!("waiting for the nightly backup to finish");
            }
            let _ = job.join();
        }
    }
}

/// Queues a rollup and retention round into the next flush's transaction: on an SD card a
/// commit costs its fsync and journal whatever it holds (docs/DURABILITY.md), and the open hour
/// is rolled four times an hour, so the round rides on the flush's commit instead of making its
/// own. It runs after the flush's minutes are written, with the clock read then. A round that
/// fails is rolled back alone and tried again at the next flushes (store::batch); the minutes it
/// needs stay stored until a rollup has them.
fn maintain(
    flusher: &mut Flusher,
    tz: &jiff::tz::TimeZone,
    retention: &Retention,
    health: &SharedHealth,
) {
    type Done = Option<(jiff::Timestamp, MaintenanceReport, u64)>;
    let done: Arc<Mutex<Done>> = Arc::default();
    let (tz, retention, health) = (tz.clone(), *retention, health.clone());
    let ran = done.clone();
    flusher.queue().push_then(
        "history maintenance",
        move |sp, path| {
            let now = jiff::Timestamp::now();
            let started = Instant::now();
            let r = crate::store::rollup::maintain_in(sp, path, &tz, &retention, now.as_second())
                .inspect_err(
                |e| tracing::warn!(error = %e, "history maintenance failed; retried later"),
            )?;
            let ms = started.elapsed().as_millis() as u64;
            *ran.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, r, ms));
            Ok(())
        },
        move || {
            let Some((now, r, ms)) = done.lock().unwrap_or_else(|p| p.into_inner()).take() else {
                return;
            };
            health.update(|h| h.last_maintenance = Some(now));
            if r.rolled.iter().chain(&r.deleted).any(|&n| n > 0) {
                tracing::info!(
                    rolled_hours = r.rolled[0],
                    rolled_days = r.rolled[1],
                    rolled_months = r.rolled[2],
                    deleted_minute_rows = r.deleted[0],
                    deleted_hour_rows = r.deleted[1],
                    deleted_day_rows = r.deleted[2],
                    deleted_month_rows = r.deleted[3],
                    ms,
                    "history maintenance (in the flush's commit)"
                );
            }
        },
    );
}

/// When a failed nightly backup is tried again: soon enough to get one that night once space is
/// freed, rarely enough that a full disk is not rewritten every maintenance round.
const BACKUP_RETRY: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

/// The nightly backup's state between maintenance rounds.
#[derive(Default)]
struct BackupSchedule {
    /// The running backup thread; it returns whether the backup was written.
    job: Option<std::thread::JoinHandle<bool>>,
    /// The local date of the last backup written (or found already on disk).
    done_day: Option<jiff::civil::Date>,
    /// After a failure, no new attempt before this moment.
    retry_after: Option<jiff::Timestamp>,
}

/// Starts the nightly backup on its own thread (with its own connection, so flushes go on)
/// once the local clock reaches `backup_hour`, at most once a day; a failed one is tried again
/// every [`BACKUP_RETRY`] until it is written.
fn nightly_backup(
    cfg: &Config,
    tz: &jiff::tz::TimeZone,
    db: &std::path::Path,
    health: &SharedHealth,
    s: &mut BackupSchedule,
) {
    if s.job.as_ref().is_some_and(|j| !j.is_finished()) {
        return;
    }
    let now = jiff::Timestamp::now();
    if let Some(done) = s.job.take() {
        match done.join() {
            Ok(true) => s.retry_after = None,
            Ok(false) => {
                s.done_day = None;
                s.retry_after = now.checked_add(BACKUP_RETRY).ok();
            }
            Err(_) => tracing::error!("the backup thread panicked"),
        }
    }
    let local = now.to_zoned(tz.clone());
    let today = local.date();
    if local.hour() < i8::try_from(cfg.backup_hour).unwrap_or(0)
        || s.done_day == Some(today)
        || s.retry_after.is_some_and(|t| now < t)
    {
        return;
    }
    s.done_day = Some(today);
    let (db, dir, keep, health) = (
        db.to_path_buf(),
        cfg.backup_dir_path(),
        cfg.backup_keep as usize,
        health.clone(),
    );
    let spawned = std::thread::Builder::new()
        .name("backup".into())
        .spawn(move || match backup::nightly(&db, &dir, keep, today) {
            Ok(written) => {
                if let Some(path) = written {
                    tracing::info!(backup = %path.display(), "nightly backup written");
                    health.update(|h| {
                        h.last_backup = Some((jiff::Timestamp::now(), path));
                        h.last_backup_error = None;
                    });
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %e, folder = %dir.display(), retry_in_minutes = BACKUP_RETRY.as_mins(), "nightly backup failed");
                health.update(|h| h.last_backup_error = Some(e.to_string()));
                false
            }
        });
    match spawned {
        Ok(handle) => s.job = Some(handle),
        Err(e) => tracing::error!(error = %e, "cannot start the backup thread"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Counts, MinuteUsage};
    use crate::store::Store;
    use crate::store::batch::tests::wal_commits;
    use crate::store::usage::tests::mac;

    /// A maintenance round is queued, not committed: the rollup rides on the next flush's
    /// commit (one WAL commit for the flush and the round), then the open hour is rolled to its
    /// settled quarter and its row holds exactly the minutes before that.
    #[test]
    fn a_maintenance_round_rides_on_the_next_flush_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let mut f = Flusher::new(Store::open(&db).unwrap());
        let now = jiff::Timestamp::now().as_second();
        let counts = Counts {
            frames_sent: 1,
            bytes_sent: 100,
            internet_upload_bytes: 100,
            ..Counts::default()
        };
        // Every minute of the last two hours, as a running daemon has flushed them.
        let minutes: Vec<i64> = (0..120).map(|i| (now - 7200) / 60 * 60 + i * 60).collect();
        let usage = |m: &[i64]| -> Vec<MinuteUsage> {
            m.iter()
                .map(|&minute| MinuteUsage {
                    mac: mac(1),
                    minute,
                    counts,
                })
                .collect()
        };
        f.flush(usage(&minutes), Vec::new()).unwrap();
        let commits = wal_commits(&db);
        let health = SharedHealth::default();
        maintain(
            &mut f,
            &jiff::tz::TimeZone::UTC,
            &Retention::FOREVER,
            &health,
        );
        assert_eq!(wal_commits(&db), commits, "the round waits for the flush");
        assert!(f.store().history_state().unwrap().is_none());
        assert!(health.snapshot().last_maintenance.is_none());
        let stats = f.flush(Vec::new(), Vec::new()).unwrap();
        assert_eq!(stats.queued, 1);
        assert_eq!(wal_commits(&db) - commits, 1, "one commit for both");
        assert!(health.snapshot().last_maintenance.is_some());
        let state = f.store().history_state().unwrap().unwrap();
        let settled = now - crate::store::rollup::SETTLED_AFTER;
        let step = crate::store::rollup::OPEN_HOUR_STEP;
        let hour = |t: i64| t.div_euclid(3600) * 3600;
        let quarter = hour(settled) + (settled - hour(settled)) / step * step;
        // The flush ran a moment after `now`: the same quarter unless one settled in between.
        let after = jiff::Timestamp::now().as_second();
        assert!(
            state.hour_rolled >= hour(now).max(quarter) && state.hour_rolled <= after,
            "{state:?} now {now}"
        );
        let before = minutes.iter().filter(|&&m| m < state.hour_rolled).count() as i64;
        let rolled: i64 = rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("SELECT sum(bytes_sent) FROM usage_hour", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rolled, before * 100);
    }
}
