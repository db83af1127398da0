//! The page caches: the household's stored reading, the plan summary and device pages, reused
//! for a moment so a
//! burst of requests (htmx refreshes, several open tabs) does not query the database each time.
//!
//! They live here, beside the shared state that holds them, so the state itself need not know
//! the pages' types. Whether a cached reading is still current (its generation, its age) is the
//! page's decision, except for device pages, which are kept by id and dropped when stale.
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Which cache a refresh is for.
#[derive(Clone, Copy)]
enum CacheKind {
    Household = 0,
    Device = 1,
    Plan = 2,
}

/// Held while one request refreshes a cache; dropping it lets the next one try.
pub(super) struct Refresh<'a>(&'a AtomicBool);

impl Drop for Refresh<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

type DeviceEntry = (std::time::Instant, u64, Arc<super::device::DeviceView>);
type PlanEntry = (std::time::Instant, u64, Arc<crate::store::plan::PlanReport>);

/// Device pages kept at most; more are dropped all at once (they are rebuilt in milliseconds).
const DEVICE_CACHE_MAX: usize = 64;

#[derive(Default)]
pub(super) struct PageCaches {
    /// A std Mutex: held only to swap an `Arc`, never across an await.
    household: Mutex<Option<Arc<super::view::Stored>>>,
    /// The plan summary the overview's plan card shows: (when, generation, report).
    plan: Mutex<Option<PlanEntry>>,
    /// The overview's router-coverage line: (when, generation, line).
    coverage: Mutex<Option<(std::time::Instant, u64, Option<String>)>>,
    /// Device pages by id: (when, generation, page data). A std Mutex, held only for a lookup.
    devices: Mutex<std::collections::HashMap<i64, DeviceEntry>>,
    /// One refresh at a time per cache (household, device pages, plan summary): the other
    /// requests meanwhile get the previous reading instead of all querying the database at once.
    refreshing: [AtomicBool; 3],
    /// Rendered pages (see [`super::respond`]).
    pub(super) responses: super::respond::Responses,
}

impl PageCaches {
    pub(super) fn household(&self) -> Option<Arc<super::view::Stored>> {
        self.household
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn set_household(&self, s: Arc<super::view::Stored>) {
        *self.household.lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
    }

    /// The plan summary read less than [`super::view::STALE_MAX`] ago with no change since, and
    /// when (the caller decides whether it is fresh enough, as for device pages).
    pub(super) fn plan_summary(
        &self,
        generation: u64,
    ) -> Option<(std::time::Instant, Arc<crate::store::plan::PlanReport>)> {
        self.plan
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|(at, g, _)| *g == generation && at.elapsed() < super::view::STALE_MAX)
            .map(|(at, _, r)| (*at, Arc::clone(r)))
    }

    pub(super) fn set_plan_summary(&self, generation: u64, r: Arc<crate::store::plan::PlanReport>) {
        *self.plan.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), generation, r));
    }

    /// The overview's coverage line made less than [`super::view::CACHE_FOR`] ago with no
    /// change since (`Some(None)`: made, and there is nothing to say).
    pub(super) fn coverage(&self, generation: u64) -> Option<Option<String>> {
        self.coverage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|(at, g, _)| *g == generation && at.elapsed() < super::view::CACHE_FOR)
            .map(|(_, _, l)| l.clone())
    }

    pub(super) fn set_coverage(&self, generation: u64, line: Option<String>) {
        *self.coverage.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), generation, line));
    }

    /// The right to refresh the household reading, unless another request is refreshing it now.
    pub(super) fn refresh_household(&self) -> Option<Refresh<'_>> {
        self.try_refresh(CacheKind::Household)
    }

    /// The right to refresh a device page, unless another request is refreshing one now.
    pub(super) fn refresh_device(&self) -> Option<Refresh<'_>> {
        self.try_refresh(CacheKind::Device)
    }

    /// The right to refresh the plan summary, unless another request is refreshing it now.
    pub(super) fn refresh_plan(&self) -> Option<Refresh<'_>> {
        self.try_refresh(CacheKind::Plan)
    }

    fn try_refresh(&self, kind: CacheKind) -> Option<Refresh<'_>> {
        let flag = &self.refreshing[kind as usize];
        flag.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Refresh(flag))
    }

    /// A device page read less than [`super::view::STALE_MAX`] ago with no change since, and when.
    pub(super) fn device(
        &self,
        id: i64,
        generation: u64,
    ) -> Option<(std::time::Instant, Arc<super::device::DeviceView>)> {
        let map = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&id)
            .filter(|(at, g, _)| *g == generation && at.elapsed() < super::view::STALE_MAX)
            .map(|(at, _, d)| (*at, Arc::clone(d)))
    }

    pub(super) fn set_device(&self, id: i64, generation: u64, d: Arc<super::device::DeviceView>) {
        let mut map = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= DEVICE_CACHE_MAX {
            map.clear();
        }
        map.insert(id, (std::time::Instant::now(), generation, d));
    }
}
