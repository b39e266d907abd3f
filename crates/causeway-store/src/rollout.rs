//! The one owner of "who answers": [`MetaStore::apply_rollout`] changes a model's `champion` and
//! `challenger` aliases, its traffic policy and the audit log together, in one transaction, with
//! a compare-and-set on the policy's generation. Every caller — the CLI, the MLflow registry
//! routes, the loop — goes through it (setting or deleting those two aliases, deleting the
//! version they point at, all end here), and serving follows the stored policy.
//!
//! Other aliases are plain names: they are written here too, with history and an audit event,
//! but never change what answers.

use std::collections::BTreeMap;

use causeway_types::{CHALLENGER, CHAMPION, RolloutMode, TrafficPolicy};

use crate::db::{Connection, OptionalRow, params};
use crate::error::{Error, Result};
use crate::meta::{MetaStore, audit, insert_event, reason_suffix};

/// What a rollout change does to a model's traffic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RolloutChange {
    /// `version` becomes the champion and answers alone; a rollout in progress ends.
    Champion(u32),
    /// `version` runs beside the champion as the challenger, in shadow or canary `mode`.
    Challenger {
        /// The challenger.
        version: u32,
        /// How it shares traffic.
        mode: RolloutMode,
    },
    /// The challenger is dropped and the champion answers alone.
    EndRollout,
    /// Nothing answers any more: the champion (and any challenger) alias is removed.
    Unserve,
}

/// One change of who answers.
#[derive(Debug, Clone)]
pub struct Rollout<'a> {
    /// The registered model.
    pub model: &'a str,
    /// What changes.
    pub change: RolloutChange,
    /// The generation the caller based its decision on; the change is refused with
    /// [`Error::Conflict`] when the stored one differs. `None` changes unconditionally.
    pub expected_generation: Option<i64>,
    /// Who asks, for the audit log.
    pub actor: &'a str,
    /// When (epoch ms).
    pub at_ms: i64,
    /// Why, for the audit log (may be empty).
    pub reason: &'a str,
}

impl MetaStore {
    /// Applies a rollout change: aliases, traffic policy and audit events in one transaction.
    /// Returns the policy now in force (`None` when nothing answers).
    pub fn apply_rollout(&self, rollout: &Rollout<'_>) -> Result<Option<TrafficPolicy>> {
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        let policy = apply_rollout_in(&mut transaction, rollout)?;
        transaction.commit()?;
        Ok(policy)
    }

    /// [`MetaStore::apply_rollout`] and the document `state_key` (the loop's state after the
    /// decision) in one transaction: a crash leaves both or neither, so the loop resumes from a
    /// state that agrees with who answers.
    pub fn apply_rollout_with_state(
        &self,
        rollout: &Rollout<'_>,
        state_key: &str,
        state: &serde_json::Value,
    ) -> Result<Option<TrafficPolicy>> {
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        let policy = apply_rollout_in(&mut transaction, rollout)?;
        transaction.execute(
            "INSERT INTO state (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![state_key, serde_json::to_string(state)?],
        )?;
        transaction.commit()?;
        Ok(policy)
    }

    /// The policy serving follows: the stored one, or for a store written before policies were
    /// kept, the champion alias alone. `None` when nothing should answer.
    pub fn serving_policy(&self, model: &str) -> Result<Option<TrafficPolicy>> {
        serving_policy_in(&mut self.lock(), model)
    }

    /// The stored traffic policy of a model, if one is in force.
    pub fn traffic(&self, model: &str) -> Result<Option<TrafficPolicy>> {
        Ok(stored_policy(&mut self.lock(), model)?.and_then(|(policy, _)| policy))
    }

    /// Points `alias` of `model` at `version`, with history and an audit event. For `champion`
    /// and `challenger` this is a rollout change (see [`MetaStore::apply_rollout`]): a new
    /// champion answers alone at once; a new challenger replaces the one in a rollout in
    /// progress (in its mode) and otherwise only names a candidate.
    pub fn set_alias(
        &self,
        model: &str,
        alias: &str,
        version: u32,
        actor: &str,
        at_ms: i64,
        reason: &str,
    ) -> Result<()> {
        check_alias_name(alias)?;
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        version_exists(&mut transaction, model, version)?;
        let change = match alias {
            CHAMPION => Some(RolloutChange::Champion(version)),
            CHALLENGER => match serving_policy_in(&mut transaction, model)? {
                Some(policy) if policy.challenger.is_some() => {
                    Some(RolloutChange::Challenger { version, mode: policy.mode })
                }
                _ => None,
            },
            _ => None,
        };
        let rollout = |change| Rollout { model, change, expected_generation: None, actor, at_ms, reason };
        match change {
            Some(change) => {
                apply_rollout_in(&mut transaction, &rollout(change))?;
            }
            None => {
                write_alias(&mut transaction, model, alias, Some(version), actor, at_ms, reason)?;
            }
        }
        transaction.commit()
    }

    /// Removes `alias` from `model` (no error when it was not set). Removing `champion` stops
    /// the model answering; removing `challenger` ends a rollout in progress.
    pub fn delete_alias(&self, model: &str, alias: &str, actor: &str, at_ms: i64, reason: &str) -> Result<()> {
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        let policy = serving_policy_in(&mut transaction, model)?;
        let change = match alias {
            CHAMPION if policy.is_some() => Some(RolloutChange::Unserve),
            CHALLENGER if policy.is_some_and(|policy| policy.challenger.is_some()) => Some(RolloutChange::EndRollout),
            _ => None,
        };
        match change {
            Some(change) => {
                apply_rollout_in(
                    &mut transaction,
                    &Rollout { model, change, expected_generation: None, actor, at_ms, reason },
                )?;
                // An alias that named something other than what answered goes too.
                write_alias(&mut transaction, model, alias, None, actor, at_ms, reason)?;
            }
            None => {
                write_alias(&mut transaction, model, alias, None, actor, at_ms, reason)?;
            }
        }
        transaction.commit()
    }

    /// Points `alias` back at the version it had before its current one, and returns that
    /// version (for `champion`, a rollout change).
    pub fn rollback_alias(&self, model: &str, alias: &str, actor: &str, at_ms: i64, reason: &str) -> Result<u32> {
        let current = self.alias(model, alias)?.ok_or_else(|| Error::NotFound(format!("alias `{model}@{alias}`")))?;
        let previous: Option<u32> = {
            let versions: Vec<u32> = self.lock().query_map(
                "SELECT h.version FROM alias_history h JOIN model_versions v ON v.model = h.model AND v.version = h.version
                 WHERE h.model = ?1 AND h.alias = ?2 AND h.version IS NOT NULL ORDER BY h.id DESC",
                params![model, alias],
                |row| row.get(0),
            )?;
            versions.into_iter().find(|version| *version != current)
        };
        let previous = previous.ok_or_else(|| Error::NotFound(format!("an earlier version of `{model}@{alias}`")))?;
        let reason = if reason.is_empty() { "rollback".to_string() } else { format!("rollback: {reason}") };
        self.set_alias(model, alias, previous, actor, at_ms, &reason)?;
        Ok(previous)
    }
}

/// The alias MLflow resolves to a model's highest version; no alias may take its name.
pub(crate) const LATEST_ALIAS: &str = "latest";

/// Refuses the alias names MLflow reserves: `latest` (any case) and version-like `v1`, `V2`…,
/// with MLflow's words.
fn check_alias_name(alias: &str) -> Result<()> {
    if alias.eq_ignore_ascii_case(LATEST_ALIAS) {
        return Err(Error::InvalidValue("'latest' alias name (case insensitive) is reserved.".into()));
    }
    let mut characters = alias.chars();
    let version_like = matches!(characters.next(), Some('v' | 'V'))
        && !characters.as_str().is_empty()
        && characters.all(|character| character.is_ascii_digit());
    if version_like {
        return Err(Error::InvalidValue(format!("Version alias name '{alias}' is reserved.")));
    }
    Ok(())
}

fn version_exists(connection: &mut Connection, model: &str, version: u32) -> Result<()> {
    let exists: Option<u32> = connection
        .query_row(
            "SELECT version FROM model_versions WHERE model = ?1 AND version = ?2",
            params![model, version],
            |row| row.get(0),
        )
        .optional()?;
    match exists {
        Some(_) => Ok(()),
        None => Err(Error::NotFound(format!("model `{model}` version {version}"))),
    }
}

/// The version `alias` of `model` points at, inside an open connection or transaction.
pub(crate) fn alias_in(connection: &mut Connection, model: &str, alias: &str) -> Result<Option<u32>> {
    connection
        .query_row("SELECT version FROM aliases WHERE model = ?1 AND alias = ?2", params![model, alias], |row| {
            row.get(0)
        })
        .optional()
}

/// The stored policy row: the policy (`None` once nothing answers) and its generation.
fn stored_policy(connection: &mut Connection, model: &str) -> Result<Option<(Option<TrafficPolicy>, i64)>> {
    let row: Option<(String, i64)> = connection
        .query_row("SELECT policy_json, generation FROM traffic WHERE model = ?1", params![model], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    row.map(|(json, generation)| Ok((serde_json::from_str::<Option<TrafficPolicy>>(&json)?, generation))).transpose()
}

pub(crate) fn serving_policy_in(connection: &mut Connection, model: &str) -> Result<Option<TrafficPolicy>> {
    if let Some((policy, _)) = stored_policy(connection, model)? {
        return Ok(policy);
    }
    Ok(alias_in(connection, model, CHAMPION)?.map(|champion| TrafficPolicy {
        model: model.to_string(),
        champion,
        challenger: None,
        mode: RolloutMode::ChampionOnly,
        generation: 0,
    }))
}

/// Sets (`Some`) or removes (`None`) an alias, with history and an audit event; returns whether
/// anything changed.
pub(crate) fn write_alias(
    connection: &mut Connection,
    model: &str,
    alias: &str,
    version: Option<u32>,
    actor: &str,
    at_ms: i64,
    reason: &str,
) -> Result<bool> {
    let (message, details) = match version {
        Some(version) => {
            if alias_in(connection, model, alias)? == Some(version) {
                return Ok(false);
            }
            connection.execute(
                "INSERT INTO aliases (model, alias, version, updated_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (model, alias) DO UPDATE SET version = excluded.version, updated_ms = excluded.updated_ms",
                params![model, alias, version, at_ms],
            )?;
            (
                format!("{model}@{alias} -> version {version}{}", reason_suffix(reason)),
                serde_json::json!({"action": "set_alias", "alias": alias, "version": version, "reason": reason}),
            )
        }
        None => {
            let removed =
                connection.execute("DELETE FROM aliases WHERE model = ?1 AND alias = ?2", params![model, alias])?;
            if removed == 0 {
                return Ok(false);
            }
            (
                format!("{model}@{alias} removed{}", reason_suffix(reason)),
                serde_json::json!({"action": "delete_alias", "alias": alias, "reason": reason}),
            )
        }
    };
    connection.execute(
        "INSERT INTO alias_history (model, alias, version, at_ms) VALUES (?1, ?2, ?3, ?4)",
        params![model, alias, version, at_ms],
    )?;
    insert_event(connection, &audit(at_ms, actor, model, message, details))?;
    Ok(true)
}

/// [`MetaStore::apply_rollout`] inside an open transaction (deleting a version uses it too).
pub(crate) fn apply_rollout_in(connection: &mut Connection, rollout: &Rollout<'_>) -> Result<Option<TrafficPolicy>> {
    let model = rollout.model;
    let stored = stored_policy(connection, model)?;
    let generation = stored.as_ref().map_or(0, |(_, generation)| *generation);
    if let Some(expected) = rollout.expected_generation
        && expected != generation
    {
        return Err(Error::Conflict(format!(
            "the traffic of `{model}` changed since it was read (generation {expected}, now {generation}); read it again"
        )));
    }
    let current = serving_policy_in(connection, model)?;
    let policy = |champion: u32, challenger: Option<u32>, mode: RolloutMode| TrafficPolicy {
        model: model.to_string(),
        champion,
        challenger,
        mode,
        generation: generation + 1,
    };
    let no_champion =
        || Error::InvalidValue(format!("model `{model}` has no champion: promote a version before starting a rollout"));
    let next = match rollout.change {
        RolloutChange::Champion(version) => {
            version_exists(connection, model, version)?;
            Some(policy(version, None, RolloutMode::ChampionOnly))
        }
        RolloutChange::Challenger { version, mode } => {
            version_exists(connection, model, version)?;
            let champion = current.as_ref().ok_or_else(no_champion)?.champion;
            if version == champion {
                return Err(Error::InvalidValue(format!(
                    "version {version} of `{model}` is the champion; a challenger must be another version"
                )));
            }
            if mode == RolloutMode::ChampionOnly {
                return Err(Error::InvalidValue("a challenger runs in shadow or canary mode".into()));
            }
            Some(policy(champion, Some(version), mode))
        }
        RolloutChange::EndRollout => {
            let champion = current.as_ref().ok_or_else(no_champion)?.champion;
            Some(policy(champion, None, RolloutMode::ChampionOnly))
        }
        RolloutChange::Unserve => None,
    };
    let (champion, challenger) = match &next {
        Some(next) => (Some(next.champion), next.challenger),
        None => (None, None),
    };
    let (actor, at_ms, reason) = (rollout.actor, rollout.at_ms, rollout.reason);
    write_alias(connection, model, CHAMPION, champion, actor, at_ms, reason)?;
    // The challenger alias follows a rollout; outside one it is left as the candidate it names,
    // unless the rollout just ended or nothing answers.
    match (challenger, rollout.change) {
        (Some(version), _) => {
            write_alias(connection, model, CHALLENGER, Some(version), actor, at_ms, reason)?;
        }
        (None, RolloutChange::EndRollout | RolloutChange::Unserve) => {
            write_alias(connection, model, CHALLENGER, None, actor, at_ms, reason)?;
        }
        (None, RolloutChange::Champion(version)) => {
            let candidate = alias_in(connection, model, CHALLENGER)?;
            let rollout_running = current.as_ref().is_some_and(|current| current.challenger.is_some());
            if rollout_running || candidate == Some(version) {
                write_alias(connection, model, CHALLENGER, None, actor, at_ms, reason)?;
            }
        }
        (None, RolloutChange::Challenger { .. }) => {}
    }
    connection.execute(
        "INSERT INTO traffic (model, policy_json, generation) VALUES (?1, ?2, ?3)
         ON CONFLICT (model) DO UPDATE SET policy_json = excluded.policy_json, generation = excluded.generation",
        params![model, serde_json::to_string(&next)?, generation + 1],
    )?;
    let message = match &next {
        Some(next) => {
            let mode = match next.mode {
                RolloutMode::ChampionOnly => "champion only".to_string(),
                RolloutMode::Shadow => "shadow".to_string(),
                RolloutMode::Canary { share } => format!("canary {:.0}%", share * 100.0),
            };
            let challenger = next.challenger.map(|version| format!(", challenger v{version}")).unwrap_or_default();
            format!("traffic of {model}: champion v{}{challenger}, {mode}{}", next.champion, reason_suffix(reason))
        }
        None => format!("traffic of {model}: not served (no champion){}", reason_suffix(reason)),
    };
    let details = serde_json::json!({"action": "rollout", "generation": generation + 1, "policy": next});
    insert_event(connection, &audit(at_ms, actor, model, message, details))?;
    Ok(next)
}

/// After version `version` of `model` is deleted inside `connection`'s transaction: a deleted
/// champion stops the model answering, a deleted challenger ends its rollout.
pub(crate) fn forget_version(
    connection: &mut Connection,
    model: &str,
    version: u32,
    actor: &str,
    at_ms: i64,
) -> Result<()> {
    let reason = format!("version {version} was deleted");
    let change = match serving_policy_in(connection, model)? {
        Some(policy) if policy.champion == version => Some(RolloutChange::Unserve),
        Some(policy) if policy.challenger == Some(version) => Some(RolloutChange::EndRollout),
        _ => None,
    };
    if let Some(change) = change {
        apply_rollout_in(
            connection,
            &Rollout { model, change, expected_generation: None, actor, at_ms, reason: &reason },
        )?;
    }
    let others: BTreeMap<String, u32> = connection
        .query_pairs("SELECT alias, version FROM aliases WHERE model = ?1 AND version = ?2", params![model, version])?;
    for alias in others.keys() {
        write_alias(connection, model, alias, None, actor, at_ms, &reason)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestStore, on_both_backends};
    use causeway_types::{EventKind, ModelVersionRecord};

    fn register(store: &MetaStore, model: &str) -> Result<u32> {
        let record = ModelVersionRecord {
            model: model.into(),
            version: 0,
            run_id: "run".into(),
            dataset: String::new(),
            artifact_key: "models/x".into(),
            flavor: "causeway".into(),
            created_ms: 1,
            metrics: BTreeMap::new(),
        };
        Ok(store.register_version(&record, "test")?.version)
    }

    fn change(model: &str, change: RolloutChange, expected_generation: Option<i64>) -> Rollout<'_> {
        Rollout { model, change, expected_generation, actor: "test", at_ms: 10, reason: "" }
    }

    fn aliases_traffic_and_audit_change_together(location: &TestStore) -> Result<()> {
        let store = location.open()?;
        let (first, second, third) =
            (register(&store, "fraud")?, register(&store, "fraud")?, register(&store, "fraud")?);
        let policy = store.apply_rollout(&change("fraud", RolloutChange::Champion(first), None))?;
        assert_eq!(policy.as_ref().map(|policy| (policy.champion, policy.generation)), Some((first, 1)));
        let canary = RolloutChange::Challenger { version: second, mode: RolloutMode::Canary { share: 0.05 } };
        store.apply_rollout(&change("fraud", canary, Some(1)))?;
        assert_eq!(store.alias("fraud", CHALLENGER)?, Some(second));
        // A decision based on an old generation is refused, and changes nothing.
        let stale = store.apply_rollout(&change("fraud", RolloutChange::EndRollout, Some(1)));
        assert!(matches!(stale, Err(Error::Conflict(_))), "{stale:?}");
        assert_eq!(store.serving_policy("fraud")?.map(|policy| policy.challenger), Some(Some(second)));

        // An alias set through the registry (as MLflow's client does) moves what answers, and
        // ends the rollout: the alias, the policy and the audit log agree.
        store.set_alias("fraud", CHAMPION, third, "mlflow-user", 11, "")?;
        let policy = store.serving_policy("fraud")?.ok_or_else(|| Error::NotFound("policy".into()))?;
        assert_eq!((policy.champion, policy.challenger, policy.mode), (third, None, RolloutMode::ChampionOnly));
        assert_eq!((store.alias("fraud", CHAMPION)?, store.alias("fraud", CHALLENGER)?), (Some(third), None));
        let audit = store.events(Some(EventKind::Audit))?;
        assert!(audit.iter().any(|event| event.actor == "mlflow-user" && event.message.contains("champion v3")));

        // Other aliases never change what answers.
        store.set_alias("fraud", "staging", first, "test", 12, "")?;
        assert_eq!(store.serving_policy("fraud")?.map(|policy| policy.champion), Some(third));

        // Deleting the champion version stops the model answering, now and after a reopen.
        store.delete_model_version("fraud", third, "test", 13)?;
        assert_eq!(store.serving_policy("fraud")?, None);
        assert_eq!(location.open()?.serving_policy("fraud")?, None);
        assert_eq!(store.registered_model("fraud")?.last_updated_time, 13);

        // Promoting again serves again; deleting the champion alias stops it.
        store.set_alias("fraud", CHAMPION, second, "test", 14, "")?;
        assert_eq!(store.serving_policy("fraud")?.map(|policy| policy.champion), Some(second));
        store.delete_alias("fraud", CHAMPION, "test", 15, "")?;
        assert_eq!((store.serving_policy("fraud")?, store.alias("fraud", CHAMPION)?), (None, None));

        // A renamed model keeps its policy under the new name.
        store.set_alias("fraud", CHAMPION, first, "test", 16, "")?;
        store.rename_registered_model("fraud", "fraud-2", "test", 17)?;
        assert_eq!(store.serving_policy("fraud-2")?.map(|policy| policy.model), Some("fraud-2".to_string()));
        Ok(())
    }

    fn a_challenger_needs_a_champion_and_another_version(location: &TestStore) -> Result<()> {
        let store = location.open()?;
        let first = register(&store, "m")?;
        let shadow = RolloutChange::Challenger { version: first, mode: RolloutMode::Shadow };
        assert!(matches!(store.apply_rollout(&change("m", shadow, None)), Err(Error::InvalidValue(_))));
        store.apply_rollout(&change("m", RolloutChange::Champion(first), None))?;
        assert!(matches!(store.apply_rollout(&change("m", shadow, None)), Err(Error::InvalidValue(_))));
        assert!(matches!(store.apply_rollout(&change("m", RolloutChange::Champion(9), None)), Err(Error::NotFound(_))));
        Ok(())
    }

    on_both_backends!(aliases_traffic_and_audit_change_together, a_challenger_needs_a_champion_and_another_version);
}
