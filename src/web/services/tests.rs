//! Services on the device page, the overview and the API, through `router(state).oneshot(..)`
//! on a real SQLite file filled through the store API as the flusher and the names writer do.
