//! The embedded online store: each entity's recent events per view, in redb, behind a
//! write-through cache. Aggregates are computed at request time with [`crate::aggregate_window`],
//! the function the offline join uses, so online and offline values are equal.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use causeway_data::Frame;
use redb::{Database, Durability, ReadableDatabase, TableDefinition};

use crate::error::Result;
use crate::offline::{EntityEvents, entity_events};
use crate::spec::FeatureViewSpec;

const EVENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("entity_events");

/// Per-entity event windows for every view, durable in redb.
///
/// Reads are served from memory after the first touch of an entity. Writes update memory at
/// once and reach disk in one durable transaction per [`OnlineStore::flush`] (and every
/// `flush_every` pushes), so a crash loses at most the pushes since the last flush.
pub struct OnlineStore {
    database: Database,
    cache: RwLock<HashMap<String, EntityEvents>>,
    dirty: RwLock<HashSet<String>>,
    flush_every: usize,
}

fn key(view: &str, entity: &str) -> String {
    format!("{view}\u{1f}{entity}")
}

impl OnlineStore {
    /// Opens or creates the store file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let database = Database::create(path)?;
        Ok(Self {
            database,
            cache: RwLock::new(HashMap::new()),
            dirty: RwLock::new(HashSet::new()),
            flush_every: 10_000,
        })
    }

    fn cache_read(&self) -> RwLockReadGuard<'_, HashMap<String, EntityEvents>> {
        self.cache.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cache_write(&self) -> RwLockWriteGuard<'_, HashMap<String, EntityEvents>> {
        self.cache.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn dirty_write(&self) -> RwLockWriteGuard<'_, HashSet<String>> {
        self.dirty.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Replaces every entity's window of `view` with the events of `events` that fall in the
    /// window ending at `as_of_ms` (exclusive). Returns the number of entities written.
    pub fn materialize(&self, view: &FeatureViewSpec, events: &Frame, as_of_ms: i64) -> Result<usize> {
        let grouped = entity_events(view, events)?;
        let start = as_of_ms - view.window_ms();
        let transaction = self.database.begin_write()?;
        let mut written = 0;
        {
            let mut table = transaction.open_table(EVENTS)?;
            let mut cache = self.cache_write();
            for (entity, list) in grouped {
                let kept: EntityEvents = list.into_iter().filter(|(at, _)| *at >= start && *at < as_of_ms).collect();
                let entry_key = key(&view.name, &entity);
                table.insert(entry_key.as_str(), encode(&kept).as_slice())?;
                cache.insert(entry_key, kept);
                written += 1;
            }
        }
        transaction.commit()?;
        Ok(written)
    }

    /// The aggregates of `view` for `entity` at time `at_ms`.
    pub fn features(&self, view: &FeatureViewSpec, entity: &str, at_ms: i64) -> Result<Vec<f64>> {
        let entry_key = key(&view.name, entity);
        if let Some(events) = self.cache_read().get(&entry_key) {
            return Ok(crate::aggregate_window(view, events, at_ms));
        }
        let events = self.load(&entry_key)?;
        let values = crate::aggregate_window(view, &events, at_ms);
        self.cache_write().entry(entry_key).or_insert(events);
        Ok(values)
    }

    /// The events stored for `entity` in `view`.
    pub fn events(&self, view: &FeatureViewSpec, entity: &str) -> Result<EntityEvents> {
        let entry_key = key(&view.name, entity);
        if let Some(events) = self.cache_read().get(&entry_key) {
            return Ok(events.clone());
        }
        self.load(&entry_key)
    }

    fn load(&self, entry_key: &str) -> Result<EntityEvents> {
        let transaction = self.database.begin_read()?;
        let table = match transaction.open_table(EVENTS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(EntityEvents::new()),
            Err(error) => return Err(error.into()),
        };
        Ok(table.get(entry_key)?.map(|value| decode(value.value())).unwrap_or_default())
    }

    /// Appends one event of `entity` to `view`, dropping events that fell out of the window.
    pub fn push(&self, view: &FeatureViewSpec, entity: &str, at_ms: i64, values: Vec<f64>) -> Result<()> {
        let entry_key = key(&view.name, entity);
        let loaded = if self.cache_read().contains_key(&entry_key) { None } else { Some(self.load(&entry_key)?) };
        let pending = {
            let mut cache = self.cache_write();
            let events = cache.entry(entry_key.clone()).or_insert_with(|| loaded.unwrap_or_default());
            let position = events.partition_point(|(at, _)| *at <= at_ms);
            events.insert(position, (at_ms, values));
            let newest = events.last().map_or(at_ms, |(at, _)| *at);
            let horizon = newest - view.window_ms();
            let stale = events.partition_point(|(at, _)| *at < horizon);
            events.drain(..stale);
            let mut dirty = self.dirty_write();
            dirty.insert(entry_key);
            dirty.len()
        };
        if pending >= self.flush_every {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes every pending push to disk in one durable transaction.
    pub fn flush(&self) -> Result<usize> {
        let keys: Vec<String> = self.dirty_write().drain().collect();
        if keys.is_empty() {
            return Ok(0);
        }
        let mut transaction = self.database.begin_write()?;
        transaction.set_durability(Durability::Immediate).map_err(|error| crate::Error::Online(error.to_string()))?;
        {
            let mut table = transaction.open_table(EVENTS)?;
            let cache = self.cache_read();
            for entry_key in &keys {
                if let Some(events) = cache.get(entry_key) {
                    table.insert(entry_key.as_str(), encode(events).as_slice())?;
                }
            }
        }
        transaction.commit()?;
        Ok(keys.len())
    }
}

impl Drop for OnlineStore {
    fn drop(&mut self) {
        if let Err(error) = self.flush() {
            tracing_free_warning(&error);
        }
    }
}

fn tracing_free_warning(error: &crate::Error) {
    eprintln!("warning: online store flush on close failed: {error}");
}

fn encode(events: &EntityEvents) -> Vec<u8> {
    let width = events.first().map_or(0, |(_, values)| values.len());
    let mut bytes = Vec::with_capacity(8 + events.len() * (8 + 8 * width));
    bytes.extend_from_slice(&(width as u32).to_le_bytes());
    bytes.extend_from_slice(&(events.len() as u32).to_le_bytes());
    for (at, values) in events {
        bytes.extend_from_slice(&at.to_le_bytes());
        for index in 0..width {
            bytes.extend_from_slice(&values.get(index).copied().unwrap_or(f64::NAN).to_le_bytes());
        }
    }
    bytes
}

fn decode(bytes: &[u8]) -> EntityEvents {
    let read_u32 =
        |offset: usize| bytes.get(offset..offset + 4).and_then(|slice| slice.try_into().ok()).map(u32::from_le_bytes);
    let read_u64 =
        |offset: usize| bytes.get(offset..offset + 8).and_then(|slice| slice.try_into().ok()).map(u64::from_le_bytes);
    let (Some(width), Some(count)) = (read_u32(0), read_u32(4)) else { return EntityEvents::new() };
    let (width, count) = (width as usize, count as usize);
    let mut events = Vec::with_capacity(count);
    let mut offset = 8;
    for _ in 0..count {
        let Some(at) = read_u64(offset) else { break };
        offset += 8;
        let values: Vec<f64> =
            (0..width).map(|index| read_u64(offset + 8 * index).map_or(f64::NAN, f64::from_bits)).collect();
        offset += 8 * width;
        events.push((at as i64, values));
    }
    events
}

#[cfg(test)]
mod tests {
    use causeway_data::Column;

    use super::*;
    use crate::spec::tests::spec;

    const DAY: i64 = causeway_types::DAY_MS;

    #[test]
    fn pushes_survive_reopen_and_old_events_leave_the_window() -> Result<()> {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().join("online.redb");
        let view = spec().views.remove(0);
        {
            let store = OnlineStore::open(&path)?;
            store.push(&view, "a", 0, vec![f64::NAN, 10.0])?;
            store.push(&view, "a", DAY, vec![f64::NAN, 20.0])?;
            assert_eq!(store.features(&view, "a", 2 * DAY)?, vec![2.0, 15.0]);
            store.push(&view, "a", 40 * DAY, vec![f64::NAN, 30.0])?;
            store.flush()?;
        }
        let store = OnlineStore::open(&path)?;
        assert_eq!(store.events(&view, "a")?.len(), 1);
        assert_eq!(store.features(&view, "a", 41 * DAY)?, vec![1.0, 30.0]);
        let missing = store.features(&view, "nobody", DAY)?;
        assert_eq!(missing[0], 0.0);
        assert!(missing[1].is_nan());
        Ok(())
    }

    #[test]
    fn materialized_values_equal_offline_values() -> Result<()> {
        let directory = tempfile::tempdir().expect("tempdir");
        let store = OnlineStore::open(&directory.path().join("online.redb"))?;
        let spec = spec();
        let view = &spec.views[0];
        let mut rng = causeway_types::SeededRng::new(3);
        let rows: Vec<(String, i64, f64)> = (0..300)
            .map(|_| (format!("c{}", rng.below(5)), rng.below(60 * 1000) as i64 * 86_400, rng.range(1.0, 50.0)))
            .collect();
        let frame = Frame::new()
            .with_column("customer_id", Column::Utf8(rows.iter().map(|row| Some(row.0.clone())).collect()))?
            .with_column("timestamp", Column::Int64(rows.iter().map(|row| Some(row.1)).collect()))?
            .with_column("amount", Column::Float64(rows.iter().map(|row| Some(row.2)).collect()))?;
        let as_of = 50 * DAY;
        store.materialize(view, &frame, as_of)?;
        let offline = entity_events(view, &frame)?;
        for entity in offline.keys() {
            for at in [as_of, as_of + DAY / 2] {
                let online_values = store.features(view, entity, at)?;
                let known: EntityEvents = offline[entity].iter().filter(|(when, _)| *when < as_of).cloned().collect();
                let offline_values = crate::aggregate_window(view, &known, at);
                assert_eq!(format!("{online_values:?}"), format!("{offline_values:?}"), "{entity} at {at}");
            }
        }
        Ok(())
    }
}
