//! XGBoost models (`Booster.save_model`, JSON or UBJSON, format of XGBoost 1.7 to 3.x) into a
//! [`TreeEnsemble`] that scores exactly like XGBoost: `f32` inputs and sums, `x < t`, missing
//! values by `default_left`, categories in the set going right. See docs/model-formats.md §1–2.

use crate::ensemble::{
    CategoryCodes, Comparison, EnsembleNode, EnsembleTree, Missing, Precision, Transform, TreeEnsemble,
};
use crate::error::{Error, Result};
use crate::import::document::Document;
use crate::import::{FeatureDescription, Imported};

fn unsupported(what: impl std::fmt::Display) -> Error {
    Error::Unsupported(format!("XGBoost model: {what}"))
}

/// The categories XGBoost (3.1 and later) stores with a model trained on pandas categoricals, per
/// feature in code order (`model/cats/enc`: each feature's names as UTF-8 bytes cut at
/// `offsets`); `None` for features without stored text categories.
fn stored_categories(model: &Document) -> Result<Vec<Option<Vec<String>>>> {
    let Some(encodings) = model.get("cats").and_then(|cats| cats.get("enc")) else { return Ok(Vec::new()) };
    encodings
        .as_array("cats/enc")?
        .iter()
        .map(|encoding| {
            let offsets = encoding.get("offsets").map(|offsets| offsets.integers("cats/enc/offsets")).transpose()?;
            let values = encoding.get("values").map(|values| values.integers("cats/enc/values")).transpose()?;
            let (Some(offsets), Some(values)) = (offsets, values) else { return Ok(None) };
            if offsets.len() < 2 {
                return Ok(None);
            }
            let bytes: Vec<u8> = values
                .iter()
                .map(|value| u8::try_from(*value))
                .collect::<Result<_, _>>()
                .map_err(|_| Error::Unsupported("XGBoost model: stored categories that are not text".into()))?;
            offsets
                .windows(2)
                .map(|window| {
                    let (start, end) = (usize::try_from(window[0]), usize::try_from(window[1]));
                    match (start, end) {
                        (Ok(start), Ok(end)) if start <= end && end <= bytes.len() => {
                            String::from_utf8(bytes[start..end].to_vec())
                                .map_err(|_| Error::Invalid("XGBoost model: a stored category is not UTF-8".into()))
                        }
                        _ => Err(Error::Invalid("XGBoost model: stored category offsets out of range".into())),
                    }
                })
                .collect::<Result<Vec<String>>>()
                .map(Some)
        })
        .collect()
}

/// Reads a parsed XGBoost model document.
pub(crate) fn import(document: &Document) -> Result<Imported> {
    let learner = document.at("learner")?;
    let version = document
        .get("version")
        .and_then(|version| version.integers("version").ok())
        .map(|parts| parts.iter().map(i64::to_string).collect::<Vec<_>>().join("."))
        .unwrap_or_else(|| "unknown".to_string());
    let parameters = learner.at("learner_model_param")?;
    let features = usize::try_from(parameters.at("num_feature")?.as_i64("num_feature")?)
        .map_err(|_| Error::Invalid("negative num_feature".into()))?;
    let classes = parameters.get("num_class").map(|value| value.as_i64("num_class")).transpose()?.unwrap_or(0);
    let targets = parameters.get("num_target").map(|value| value.as_i64("num_target")).transpose()?.unwrap_or(1);
    if targets > 1 {
        return Err(unsupported(format!("{targets} regression targets (multi-output models)")));
    }
    let outputs = usize::try_from(classes.max(1)).map_err(|_| Error::Invalid("bad num_class".into()))?;
    let objective = learner.at("objective/name")?.as_text("objective")?;
    let (transform, link) = objective_transform(&objective)?;
    let base_scores = parse_base_score(&parameters.at("base_score")?.as_text("base_score")?, outputs)?;
    let base_margins = base_scores.iter().map(|score| f64::from(link.margin(*score))).collect();

    let booster = learner.at("gradient_booster")?;
    let booster_name = booster.at("name")?.as_text("gradient_booster/name")?;
    let (model, weights) = match booster_name.as_str() {
        "gbtree" => (booster.at("model")?, None),
        "dart" => (booster.at("gbtree/model")?, Some(booster.at("weight_drop")?.floats("weight_drop")?)),
        "gblinear" => return Err(unsupported("the `gblinear` booster (a linear model); only tree boosters import")),
        other => return Err(unsupported(format!("the `{other}` booster"))),
    };
    let tree_groups = model.get("tree_info").map(|info| info.integers("tree_info")).transpose()?;
    let mut trees: Vec<(i64, EnsembleTree)> = Vec::new();
    for (position, tree) in model.at("trees")?.as_array("trees")?.iter().enumerate() {
        let id = tree.get("id").map(|id| id.as_i64("id")).transpose()?.unwrap_or(position as i64);
        let index = usize::try_from(id).map_err(|_| Error::Invalid(format!("tree id {id}")))?;
        let group = tree_groups.as_ref().and_then(|groups| groups.get(index).copied()).unwrap_or(0);
        let weight = match &weights {
            Some(weights) => {
                f64::from(*weights.get(index).ok_or_else(|| Error::Invalid(format!("no weight_drop for tree {id}")))?)
            }
            None => 1.0,
        };
        let group = u32::try_from(group).map_err(|_| Error::Invalid(format!("tree {id} has group {group}")))?;
        trees.push((id, EnsembleTree { nodes: read_tree(tree, id)?, group, weight }));
    }
    // XGBoost places each tree at its `id`, and adds trees in that order.
    trees.sort_by_key(|(id, _)| *id);

    let feature_names: Vec<String> = learner
        .get("feature_names")
        .map(|names| names.as_array("feature_names"))
        .transpose()?
        .unwrap_or_default()
        .iter()
        .map(|name| name.as_text("feature_names"))
        .collect::<Result<_>>()?;
    let feature_types: Vec<String> = learner
        .get("feature_types")
        .map(|types| types.as_array("feature_types"))
        .transpose()?
        .unwrap_or_default()
        .iter()
        .map(|kind| kind.as_text("feature_types"))
        .collect::<Result<_>>()?;
    let vocabularies = stored_categories(model)?;
    let described = (0..features)
        .map(|index| FeatureDescription {
            name: feature_names.get(index).cloned().unwrap_or_else(|| format!("f{index}")),
            categorical: feature_types.get(index).is_some_and(|kind| kind == "c"),
            categories: vocabularies.get(index).cloned().flatten(),
        })
        .collect();
    let best_iteration = learner
        .get("attributes")
        .and_then(|attributes| attributes.get("best_iteration"))
        .map(|value| value.as_i64("best_iteration"))
        .transpose()?;
    let ensemble = TreeEnsemble {
        features,
        outputs,
        base_margins,
        trees: trees.into_iter().map(|(_, tree)| tree).collect(),
        precision: Precision::Float32,
        average_over: None,
        transform,
        source: format!("xgboost {version} ({objective})"),
        compiled: Default::default(),
    };
    ensemble.validate()?;
    Ok(Imported { ensemble, features: described, best_iteration })
}

/// How a stored `base_score` (in output space) becomes a starting margin.
#[derive(Debug, Clone, Copy)]
enum Link {
    Identity,
    Logit,
    Log,
}

impl Link {
    /// XGBoost's `ProbToMargin`, in `f32`.
    fn margin(self, score: f32) -> f32 {
        match self {
            Self::Identity => score,
            Self::Logit => {
                let clamped = score.clamp(1e-16_f32, 1.0 - 1e-16_f32);
                -(1.0_f32 / clamped - 1.0_f32).ln()
            }
            Self::Log => score.ln(),
        }
    }
}

fn objective_transform(objective: &str) -> Result<(Transform, Link)> {
    Ok(match objective {
        "binary:logistic" | "reg:logistic" => (Transform::Sigmoid { scale: 1.0 }, Link::Logit),
        "binary:logitraw"
        | "reg:squarederror"
        | "reg:squaredlogerror"
        | "reg:pseudohubererror"
        | "reg:absoluteerror"
        | "reg:quantileerror"
        | "reg:linear"
        | "rank:pairwise"
        | "rank:ndcg"
        | "rank:map" => (Transform::Identity, Link::Identity),
        "count:poisson" | "reg:gamma" | "reg:tweedie" => (Transform::Exp, Link::Log),
        "multi:softprob" => (Transform::Softmax, Link::Identity),
        other => return Err(unsupported(format!("objective `{other}`"))),
    })
}

/// `"[5E-1]"` (3.1+), `"5E-1"` (earlier), or one value per class; a single value is broadcast.
fn parse_base_score(text: &str, outputs: usize) -> Result<Vec<f32>> {
    let inner = text.trim().trim_start_matches(['[', '(']).trim_end_matches([']', ')']);
    let values: Vec<f32> = inner
        .split(',')
        .map(|part| {
            part.trim().parse::<f32>().map_err(|_| Error::Invalid(format!("base_score `{text}` is not a number list")))
        })
        .collect::<Result<_>>()?;
    match values.len() {
        1 => Ok(vec![values[0]; outputs]),
        count if count == outputs => Ok(values),
        count => Err(Error::Invalid(format!("base_score has {count} values for {outputs} outputs"))),
    }
}

fn read_tree(tree: &Document, id: i64) -> Result<Vec<EnsembleNode>> {
    let size_leaf_vector = tree
        .get("tree_param")
        .and_then(|parameters| parameters.get("size_leaf_vector"))
        .map(|value| value.as_i64("size_leaf_vector"))
        .transpose()?
        .unwrap_or(1);
    if size_leaf_vector > 1 {
        return Err(unsupported("vector-leaf trees (multi_strategy=\"multi_output_tree\")"));
    }
    let left = tree.at("left_children")?.integers("left_children")?;
    let right = tree.at("right_children")?.integers("right_children")?;
    let features = tree.at("split_indices")?.integers("split_indices")?;
    let conditions = tree.at("split_conditions")?.floats("split_conditions")?;
    let default_left = tree.at("default_left")?.integers("default_left")?;
    let split_type = tree.get("split_type").map(|types| types.integers("split_type")).transpose()?.unwrap_or_default();
    let count = left.len();
    if [right.len(), features.len(), conditions.len(), default_left.len()].iter().any(|length| *length != count) {
        return Err(Error::Invalid(format!("tree {id} has arrays of different lengths")));
    }
    // Categorical sets per node, as bitsets.
    let mut sets: std::collections::HashMap<usize, Vec<u32>> = std::collections::HashMap::new();
    if split_type.contains(&1) {
        let nodes = tree.at("categories_nodes")?.integers("categories_nodes")?;
        let segments = tree.at("categories_segments")?.integers("categories_segments")?;
        let sizes = tree.at("categories_sizes")?.integers("categories_sizes")?;
        let categories = tree.at("categories")?.integers("categories")?;
        for ((node, segment), size) in nodes.iter().zip(&segments).zip(&sizes) {
            let start =
                usize::try_from(*segment).map_err(|_| Error::Invalid(format!("tree {id}: bad category segment")))?;
            let end = start.saturating_add(usize::try_from(*size).unwrap_or(usize::MAX));
            let codes = categories
                .get(start..end)
                .ok_or_else(|| Error::Invalid(format!("tree {id}: category segment out of range")))?;
            let mut bits: Vec<u32> = Vec::new();
            for code in codes {
                let code = u32::try_from(*code).map_err(|_| Error::Invalid(format!("tree {id}: category {code}")))?;
                let word = (code / 32) as usize;
                if bits.len() <= word {
                    bits.resize(word + 1, 0);
                }
                bits[word] |= 1 << (code % 32);
            }
            sets.insert(
                usize::try_from(*node).map_err(|_| Error::Invalid(format!("tree {id}: bad category node")))?,
                bits,
            );
        }
    }
    let child = |value: i64| u32::try_from(value).map_err(|_| Error::Invalid(format!("tree {id}: child {value}")));
    (0..count)
        .map(|index| {
            if left[index] == -1 {
                return Ok(EnsembleNode::Leaf { value: f64::from(conditions[index]) });
            }
            let feature = u32::try_from(features[index])
                .map_err(|_| Error::Invalid(format!("tree {id}: feature {}", features[index])))?;
            let (left, right, default_left) = (child(left[index])?, child(right[index])?, default_left[index] != 0);
            match split_type.get(index).copied().unwrap_or(0) {
                0 => Ok(EnsembleNode::Numeric {
                    feature,
                    threshold: f64::from(conditions[index]),
                    comparison: Comparison::Less,
                    missing: Missing::Nan,
                    default_left,
                    left,
                    right,
                }),
                1 => Ok(EnsembleNode::Categorical {
                    feature,
                    categories: sets
                        .remove(&index)
                        .ok_or_else(|| Error::Invalid(format!("tree {id} node {index} has no categories")))?,
                    codes: CategoryCodes::Xgboost,
                    in_set_left: false,
                    default_left,
                    left,
                    right,
                }),
                other => Err(unsupported(format!("split type {other}"))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_scores_in_every_written_form() {
        assert_eq!(parse_base_score("[4.95E-1]", 1).expect("3.1+"), vec![0.495]);
        assert_eq!(parse_base_score("5E-1", 3).expect("2.x, broadcast"), vec![0.5; 3]);
        assert_eq!(parse_base_score("[1E-1,2E-1]", 2).expect("per class"), vec![0.1, 0.2]);
        assert!(parse_base_score("[1E-1,2E-1]", 3).is_err());
        assert!((Link::Logit.margin(0.495) - (-0.020_000_3)).abs() < 1e-6);
    }
}
