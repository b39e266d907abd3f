//! The live loop's coordination in the store: a leader [`Lease`] (several control planes on one
//! database, one acts), the queue of commands people give the loop (`causeway loop pause`,
//! `resume`, `retrain`), which the leader takes at its next tick, and the per-version request
//! and error counts serving replicas report ([`ServingCount`]), which the loop judges a
//! challenger's error rate by.

use crate::db::{OptionalRow, params};
use crate::error::Result;
use crate::meta::MetaStore;

/// Who holds a lease, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The holder's id (host, process and a random part).
    pub holder: String,
    /// When it lapses unless renewed (epoch ms).
    pub expires_ms: i64,
}

/// A command waiting for the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedCommand {
    /// Its place in the queue.
    pub id: i64,
    /// The model it is for.
    pub model: String,
    /// The command as JSON.
    pub command: String,
    /// When it was queued.
    pub at_ms: i64,
}

/// How long per-version serving counts are kept: 90 days.
pub const SERVING_COUNTS_KEPT_MS: i64 = 90 * 86_400_000;

/// Requests and errors one replica saw for one model version in one minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingCount {
    /// The registered model.
    pub model: String,
    /// The version.
    pub version: u32,
    /// The minute (epoch ms, a multiple of 60,000).
    pub minute_ms: i64,
    /// Requests it scored (served or shadow).
    pub requests: u64,
    /// Of those, how many failed (no score, inputs it could not read).
    pub errors: u64,
}

impl MetaStore {
    /// Adds a replica's counts to what it reported before, in one transaction, and forgets
    /// counts older than [`SERVING_COUNTS_KEPT_MS`] (a rollout never looks back that far).
    pub fn add_serving_counts(&self, replica: &str, counts: &[ServingCount]) -> Result<()> {
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        if let Some(newest) = counts.iter().map(|count| count.minute_ms).max() {
            transaction.execute(
                "DELETE FROM serving_counts WHERE minute_ms < ?1",
                params![newest.saturating_sub(SERVING_COUNTS_KEPT_MS)],
            )?;
        }
        for count in counts {
            transaction.execute(
                "INSERT INTO serving_counts (replica, model, version, minute_ms, requests, errors)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (model, version, minute_ms, replica) DO UPDATE SET
                    requests = serving_counts.requests + excluded.requests,
                    errors = serving_counts.errors + excluded.errors",
                params![
                    replica,
                    count.model,
                    count.version,
                    count.minute_ms,
                    count.requests as i64,
                    count.errors as i64
                ],
            )?;
        }
        transaction.commit()
    }

    /// (requests, errors) of `model` version `version` over every replica, in the minutes from
    /// the one holding `from_ms` on.
    pub fn serving_totals(&self, model: &str, version: u32, from_ms: i64) -> Result<(u64, u64)> {
        let minute = from_ms.div_euclid(60_000) * 60_000;
        let (requests, errors): (i64, i64) = self.lock().query_row(
            "SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT), CAST(COALESCE(SUM(errors), 0) AS BIGINT) FROM serving_counts
             WHERE model = ?1 AND version = ?2 AND minute_ms >= ?3",
            params![model, version, minute],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        Ok((requests.max(0) as u64, errors.max(0) as u64))
    }

    /// Per version and minute, (requests, errors) of `model` over every replica, in the minutes
    /// from the one holding `from_ms` up to `to_ms`, oldest first.
    pub fn serving_counts_between(&self, model: &str, from_ms: i64, to_ms: i64) -> Result<Vec<(u32, i64, u64, u64)>> {
        let minute = from_ms.div_euclid(60_000) * 60_000;
        let rows: Vec<(i64, i64, i64, i64)> = self.lock().query_map(
            "SELECT version, minute_ms, CAST(SUM(requests) AS BIGINT), CAST(SUM(errors) AS BIGINT) FROM serving_counts
             WHERE model = ?1 AND minute_ms >= ?2 AND minute_ms <= ?3
             GROUP BY version, minute_ms ORDER BY minute_ms, version",
            params![model, minute, to_ms],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )?;
        Ok(rows
            .into_iter()
            .map(|(version, minute, requests, errors)| {
                (u32::try_from(version).unwrap_or(0), minute, requests.max(0) as u64, errors.max(0) as u64)
            })
            .collect())
    }

    /// Takes or renews the lease `name` for `holder` until `now_ms + ttl_ms`: granted when nobody
    /// holds it, `holder` already does, or the holder's lease lapsed. One statement, so two
    /// contenders cannot both win. Returns whether `holder` holds it now.
    pub fn acquire_lease(&self, name: &str, holder: &str, now_ms: i64, ttl_ms: i64) -> Result<bool> {
        let mut connection = self.lock();
        connection.execute(
            "INSERT INTO leases (name, holder, expires_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms
             WHERE leases.holder = excluded.holder OR leases.expires_ms <= ?4",
            params![name, holder, now_ms.saturating_add(ttl_ms), now_ms],
        )?;
        let current: Option<String> = connection
            .query_row("SELECT holder FROM leases WHERE name = ?1", params![name], |row| row.get(0))
            .optional()?;
        Ok(current.as_deref() == Some(holder))
    }

    /// Gives the lease up, when `holder` holds it (a clean shutdown: the next contender need not
    /// wait for it to lapse).
    pub fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        self.lock().execute("DELETE FROM leases WHERE name = ?1 AND holder = ?2", params![name, holder])?;
        Ok(())
    }

    /// Who holds the lease `name` (perhaps lapsed: compare `expires_ms` with the time).
    pub fn lease(&self, name: &str) -> Result<Option<Lease>> {
        self.lock()
            .query_row("SELECT holder, expires_ms FROM leases WHERE name = ?1", params![name], |row| {
                Ok(Lease { holder: row.get(0)?, expires_ms: row.get(1)? })
            })
            .optional()
    }

    /// Queues a command for the loop of `model`.
    pub fn queue_loop_command(&self, model: &str, command: &str, at_ms: i64) -> Result<i64> {
        let id: i64 = self.lock().query_row(
            "INSERT INTO loop_commands (model, command, at_ms) VALUES (?1, ?2, ?3) RETURNING id",
            params![model, command, at_ms],
            |row| row.get(0),
        )?;
        Ok(id)
    }

    /// The commands waiting for `model`'s loop, oldest first, without taking them.
    pub fn queued_loop_commands(&self, model: &str) -> Result<Vec<QueuedCommand>> {
        self.lock().query_map(
            "SELECT id, model, command, at_ms FROM loop_commands WHERE model = ?1 ORDER BY id",
            params![model],
            |row| Ok(QueuedCommand { id: row.get(0)?, model: row.get(1)?, command: row.get(2)?, at_ms: row.get(3)? }),
        )
    }

    /// Takes (removes and returns) the commands waiting for `model`'s loop, oldest first.
    pub fn take_loop_commands(&self, model: &str) -> Result<Vec<QueuedCommand>> {
        let mut taken = self.lock().query_map(
            "DELETE FROM loop_commands WHERE model = ?1 RETURNING id, model, command, at_ms",
            params![model],
            |row| Ok(QueuedCommand { id: row.get(0)?, model: row.get(1)?, command: row.get(2)?, at_ms: row.get(3)? }),
        )?;
        taken.sort_by_key(|command| command.id);
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use crate::Result;
    use crate::testing::{TestStore, on_both_backends};

    fn one_holder_at_a_time_until_the_lease_lapses(location: &TestStore) -> Result<()> {
        let first = location.open()?;
        let second = location.open()?;
        assert!(first.acquire_lease("loop", "a", 1_000, 10_000)?);
        assert!(!second.acquire_lease("loop", "b", 2_000, 10_000)?, "a holds it until 11000");
        assert!(first.acquire_lease("loop", "a", 9_000, 10_000)?, "the holder renews");
        assert!(!second.acquire_lease("loop", "b", 12_000, 10_000)?, "renewed until 19000");
        assert_eq!(second.lease("loop")?.map(|lease| (lease.holder, lease.expires_ms)), Some(("a".into(), 19_000)));
        assert!(second.acquire_lease("loop", "b", 19_000, 10_000)?, "a lapsed lease goes to the next contender");
        assert!(!first.acquire_lease("loop", "a", 19_500, 10_000)?);
        second.release_lease("loop", "a")?;
        assert!(second.lease("loop")?.is_some(), "only the holder releases");
        second.release_lease("loop", "b")?;
        assert!(first.acquire_lease("loop", "a", 19_600, 10_000)?, "released: free at once");
        Ok(())
    }

    fn commands_queue_per_model_and_are_taken_once(location: &TestStore) -> Result<()> {
        let store = location.open()?;
        store.queue_loop_command("fraud", r#"{"command":"pause"}"#, 1)?;
        store.queue_loop_command("churn", r#"{"command":"retrain"}"#, 2)?;
        store.queue_loop_command("fraud", r#"{"command":"resume"}"#, 3)?;
        assert_eq!(store.queued_loop_commands("fraud")?.len(), 2);
        let taken = store.take_loop_commands("fraud")?;
        assert_eq!(taken.iter().map(|command| command.at_ms).collect::<Vec<_>>(), vec![1, 3]);
        assert!(store.take_loop_commands("fraud")?.is_empty());
        assert_eq!(store.take_loop_commands("churn")?.len(), 1);
        Ok(())
    }

    fn replicas_counts_add_up(location: &TestStore) -> Result<()> {
        let store = location.open()?;
        let count = |version, minute_ms, requests, errors| super::ServingCount {
            model: "fraud".into(),
            version,
            minute_ms,
            requests,
            errors,
        };
        store.add_serving_counts("a", &[count(2, 60_000, 10, 1), count(1, 60_000, 50, 0)])?;
        store.add_serving_counts("a", &[count(2, 60_000, 5, 1)])?;
        store.add_serving_counts("b", &[count(2, 120_000, 20, 2)])?;
        assert_eq!(store.serving_totals("fraud", 2, 60_000)?, (35, 4));
        assert_eq!(store.serving_totals("fraud", 2, 125_000)?, (20, 2), "from the minute holding the time on");
        assert_eq!(store.serving_totals("fraud", 3, 0)?, (0, 0));
        // Counts older than the retention go when newer ones arrive.
        store.add_serving_counts("a", &[count(2, super::SERVING_COUNTS_KEPT_MS + 120_000, 1, 0)])?;
        assert_eq!(store.serving_totals("fraud", 2, 0)?, (21, 2), "the first minute's counts are gone");
        Ok(())
    }

    on_both_backends!(
        one_holder_at_a_time_until_the_lease_lapses,
        commands_queue_per_model_and_are_taken_once,
        replicas_counts_add_up
    );
}
