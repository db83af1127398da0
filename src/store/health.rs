//! Database health for `lanmeter doctor` and the watchdog: SQLite's own consistency check.
//!
//! It only reads; it must never repair, vacuum or migrate anything (opening the store does the
//! migrating, and repairs are a person's decision with a backup at hand).

use super::{Store, StoreError, sql_err};

impl Store {
    /// `PRAGMA quick_check`: the problems SQLite finds (empty when the file is healthy). It reads
    /// every page, so it takes about as long as reading the file once: a doctor check, not a
    /// per-flush one.
    pub fn quick_check(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA quick_check")
            .map_err(sql_err(&self.path, "running quick_check"))?;
        let rows = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(sql_err(&self.path, "running quick_check"))?;
        let mut problems = Vec::new();
        for row in rows {
            let line = row.map_err(sql_err(&self.path, "running quick_check"))?;
            if line != "ok" {
                problems.push(line);
            }
        }
        Ok(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_database_passes_and_a_damaged_one_does_not_open_or_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lanmeter.db");
        let store = Store::open(&path).unwrap();
        assert_eq!(store.quick_check().unwrap(), Vec::<String>::new());
        drop(store);
        // Overwrite the middle of the file: the header survives, pages do not.
        let mut bytes = std::fs::read(&path).unwrap();
        let len = bytes.len();
        for b in &mut bytes[len / 2..] {
            *b = 0x5a;
        }
        std::fs::write(&path, bytes).unwrap();
        let damaged = Store::open_existing(&path).and_then(|s| s.quick_check());
        assert!(
            !matches!(damaged, Ok(ref p) if p.is_empty()),
            "a damaged file must be reported: {damaged:?}"
        );
    }
}
