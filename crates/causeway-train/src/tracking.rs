//! Run tracking: every training run recorded with what reproduces it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use causeway_store::MetaStore;
use causeway_types::{RunRecord, RunStatus, SeededRng, TOOL_VERSION};

use crate::error::Result;

/// Records runs in the metadata store.
pub struct RunTracker<'a> {
    meta: &'a MetaStore,
    project: &'a Path,
}

impl<'a> RunTracker<'a> {
    /// A tracker for the project rooted at `project` (used to find the git commit).
    pub fn new(meta: &'a MetaStore, project: &'a Path) -> Self {
        Self { meta, project }
    }

    /// Starts a run and returns its record (status RUNNING).
    pub fn start(
        &self,
        name: &str,
        seed: u64,
        dataset: &str,
        params: BTreeMap<String, String>,
        at_ms: i64,
    ) -> Result<RunRecord> {
        let run = RunRecord {
            run_id: new_run_id(name, at_ms),
            name: name.to_string(),
            status: RunStatus::Running,
            started_ms: at_ms,
            finished_ms: None,
            seed,
            dataset: dataset.to_string(),
            git_commit: git_commit(self.project),
            tool_version: TOOL_VERSION.to_string(),
            params,
            metrics: BTreeMap::new(),
        };
        self.meta.create_run(&run)?;
        Ok(run)
    }

    /// Logs final metrics and marks the run finished.
    pub fn finish(&self, run: &RunRecord, metrics: &BTreeMap<String, f64>, at_ms: i64) -> Result<RunRecord> {
        self.meta.log_metrics(&run.run_id, metrics, 0, at_ms)?;
        self.meta.finish_run(&run.run_id, RunStatus::Finished, at_ms)?;
        Ok(self.meta.run(&run.run_id)?)
    }

    /// Sets tags on a run (for example `mlflow.parentRunId`, which nests it under another run).
    pub fn set_tags(&self, run: &RunRecord, tags: &[(&str, &str)]) -> Result<()> {
        let tags: Vec<(String, String)> =
            tags.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect();
        Ok(self.meta.log_batch(&run.run_id, &[], &[], &tags)?)
    }

    /// Logs metrics at a step (for example the budget of a search rung) without finishing the run.
    pub fn log_step(&self, run: &RunRecord, metrics: &BTreeMap<String, f64>, step: i64, at_ms: i64) -> Result<()> {
        Ok(self.meta.log_metrics(&run.run_id, metrics, step, at_ms)?)
    }

    /// Marks the run failed.
    pub fn fail(&self, run: &RunRecord, at_ms: i64) -> Result<()> {
        Ok(self.meta.finish_run(&run.run_id, RunStatus::Failed, at_ms)?)
    }
}

/// A 32-hex-digit run id, unique per process call (wall time, process id, a counter).
fn new_run_id(name: &str, at_ms: i64) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(0);
    let seed = nanos ^ (u64::from(std::process::id()) << 32) ^ COUNTER.fetch_add(1, Ordering::Relaxed) ^ at_ms as u64;
    let mut rng = SeededRng::derive(seed, name);
    format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64())
}

/// The git commit of `directory`, when it is inside a git checkout.
pub fn git_commit(directory: &Path) -> Option<String> {
    let output = Command::new("git").arg("-C").arg(directory).args(["rev-parse", "HEAD"]).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .filter(|commit| commit.len() == 40)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_reproducibility_metadata() -> Result<()> {
        let meta = MetaStore::open_in_memory()?;
        let directory = tempfile::tempdir().expect("tempdir");
        let tracker = RunTracker::new(&meta, directory.path());
        let params = BTreeMap::from([("rounds".to_string(), "10".to_string())]);
        let run = tracker.start("gbdt", 7, "transactions@abc", params, 100)?;
        let other = tracker.start("gbdt", 7, "transactions@abc", BTreeMap::new(), 100)?;
        assert_ne!(run.run_id, other.run_id);
        let finished = tracker.finish(&run, &BTreeMap::from([("roc_auc".to_string(), 0.9)]), 200)?;
        assert_eq!(finished.status, RunStatus::Finished);
        assert_eq!(finished.seed, 7);
        assert_eq!(finished.dataset, "transactions@abc");
        assert_eq!(finished.tool_version, TOOL_VERSION);
        assert_eq!(finished.git_commit, None);
        assert_eq!(finished.params["rounds"], "10");
        assert_eq!(finished.metrics["roc_auc"], 0.9);
        Ok(())
    }
}
