//! LightGBM text models (`Booster.save_model`, `version=v3`/`v4`) into a [`TreeEnsemble`] that
//! scores exactly like LightGBM: `f64` throughout, `x <= t`, the three missing-value types, and
//! categories in the bitset going left. See docs/model-formats.md §3.

use std::collections::HashMap;

use crate::ensemble::{
    CategoryCodes, Comparison, EnsembleNode, EnsembleTree, Missing, Precision, Transform, TreeEnsemble,
};
use crate::error::{Error, Result};
use crate::import::{FeatureDescription, Imported};

fn unsupported(what: impl std::fmt::Display) -> Error {
    Error::Unsupported(format!("LightGBM model: {what}"))
}

fn invalid(what: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("LightGBM model: {what}"))
}

/// `key=value` lines of one block (the header, or one tree).
type Block<'a> = HashMap<&'a str, &'a str>;

fn numbers<T: std::str::FromStr>(block: &Block<'_>, key: &str, tree: usize) -> Result<Vec<T>> {
    let text = block.get(key).copied().unwrap_or("");
    text.split_whitespace()
        .map(|item| item.parse::<T>().map_err(|_| invalid(format!("tree {tree}: `{key}` holds `{item}`"))))
        .collect()
}

/// Reads a LightGBM model file's text.
pub(crate) fn import(text: &str) -> Result<Imported> {
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("tree") {
        return Err(invalid("the file does not start with `tree`"));
    }
    let mut header: Block<'_> = HashMap::new();
    let mut trees: Vec<Block<'_>> = Vec::new();
    for line in lines {
        let line = line.trim_end();
        if line == "end of trees" {
            break;
        }
        if line.is_empty() {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        if key == "Tree" {
            trees.push(HashMap::new());
        } else if let Some(tree) = trees.last_mut() {
            tree.insert(key, value);
        } else {
            header.insert(key, value);
        }
    }
    let header_number = |key: &str| -> Result<usize> {
        header
            .get(key)
            .ok_or_else(|| invalid(format!("`{key}` is missing")))?
            .trim()
            .parse()
            .map_err(|_| invalid(format!("`{key}` is not a number")))
    };
    let features = header_number("max_feature_idx")? + 1;
    let classes = header_number("num_class")?;
    let per_iteration = header_number("num_tree_per_iteration")?.max(1);
    let objective = header.get("objective").copied().unwrap_or("custom").trim().to_string();
    let transform = objective_transform(&objective)?;
    let average_output = header.contains_key("average_output");
    let outputs = per_iteration;
    if classes > 1 && classes != per_iteration {
        return Err(unsupported(format!("{classes} classes with {per_iteration} trees per iteration")));
    }

    let mut ensemble_trees = Vec::with_capacity(trees.len());
    for (number, block) in trees.iter().enumerate() {
        if block.get("is_linear").is_some_and(|flag| flag.trim() == "1") {
            return Err(unsupported(format!("linear trees (`linear_tree=true`, tree {number})")));
        }
        ensemble_trees.push(EnsembleTree {
            nodes: read_tree(block, number)?,
            group: (number % outputs) as u32,
            weight: 1.0,
        });
    }
    let iterations = ensemble_trees.len().div_ceil(outputs);
    let names: Vec<&str> =
        header.get("feature_names").map(|names| names.split_whitespace().collect()).unwrap_or_default();
    let infos: Vec<&str> =
        header.get("feature_infos").map(|infos| infos.split_whitespace().collect()).unwrap_or_default();
    // Numeric features are described as `[min:max]` (or `none`), categorical ones by their values.
    let categorical: Vec<bool> = (0..features)
        .map(|index| infos.get(index).is_some_and(|info| !info.starts_with('[') && *info != "none"))
        .collect();
    // pandas_categorical lists the category-dtype columns; only when there is one list per
    // categorical feature can they be matched by position (else the codes stay codes).
    let lists = pandas_categories(text)?;
    let usable = lists.len() == categorical.iter().filter(|categorical| **categorical).count();
    let mut vocabularies = lists.into_iter().filter(|_| usable);
    let described = (0..features)
        .map(|index| FeatureDescription {
            name: names.get(index).map_or_else(|| format!("Column_{index}"), |name| name.to_string()),
            categorical: categorical[index],
            // pandas_categorical lists the categorical features' categories, in feature order.
            categories: if categorical[index] { vocabularies.next().flatten() } else { None },
        })
        .collect();
    let version = header.get("version").copied().unwrap_or("unknown");
    let ensemble = TreeEnsemble {
        features,
        outputs,
        base_margins: vec![0.0; outputs],
        trees: ensemble_trees,
        precision: Precision::Float64,
        average_over: (average_output && iterations > 0).then_some(iterations as f64),
        transform,
        source: format!("lightgbm {version} ({objective})"),
        compiled: Default::default(),
    };
    ensemble.validate()?;
    Ok(Imported { ensemble, features: described, best_iteration: None })
}

/// The categories of each categorical feature, in feature order, from the `pandas_categorical:`
/// line LightGBM writes after the parameters when it was trained on pandas categoricals (none
/// when the line is absent or `null`).
fn pandas_categories(text: &str) -> Result<Vec<Option<Vec<String>>>> {
    let Some(line) = text.lines().rev().find_map(|line| line.trim().strip_prefix("pandas_categorical:")) else {
        return Ok(Vec::new());
    };
    let document = crate::import::document::parse_json(line.trim().as_bytes())?;
    if document == crate::import::document::Document::Null {
        return Ok(Vec::new());
    }
    document
        .as_array("pandas_categorical")?
        .iter()
        .map(|categories| {
            // Text and numbers name categories; anything else (booleans, nulls) leaves the codes.
            Ok(categories
                .as_array("pandas_categorical")?
                .iter()
                .map(|category| category.as_text("pandas_categorical").ok())
                .collect::<Option<Vec<String>>>())
        })
        .collect()
}

fn objective_transform(objective: &str) -> Result<Transform> {
    let mut parts = objective.split_whitespace();
    let name = parts.next().unwrap_or("custom");
    let option = |key: &str| -> Option<f64> {
        objective.split_whitespace().find_map(|part| part.strip_prefix(key).and_then(|value| value.parse().ok()))
    };
    Ok(match name {
        "binary" => Transform::Sigmoid { scale: option("sigmoid:").unwrap_or(1.0) },
        "cross_entropy" | "xentropy" => Transform::Sigmoid { scale: 1.0 },
        "multiclass" | "softmax" => Transform::Softmax,
        "poisson" | "gamma" | "tweedie" => Transform::Exp,
        "regression" | "regression_l2" | "l2" | "mean_squared_error" | "mse" if objective.contains("sqrt") => {
            return Err(unsupported("`regression` with `reg_sqrt`"));
        }
        "regression" | "regression_l2" | "l2" | "mean_squared_error" | "mse" | "regression_l1" | "l1" | "huber"
        | "fair" | "quantile" | "mape" | "lambdarank" | "rank_xendcg" | "custom" => Transform::Identity,
        other => return Err(unsupported(format!("objective `{other}`"))),
    })
}

/// Internal nodes first (LightGBM's numbering), then the leaves; node 0 is the root.
fn read_tree(block: &Block<'_>, number: usize) -> Result<Vec<EnsembleNode>> {
    let leaves: usize = block
        .get("num_leaves")
        .and_then(|count| count.trim().parse().ok())
        .ok_or_else(|| invalid(format!("tree {number}: `num_leaves` is missing")))?;
    let leaf_values: Vec<f64> = numbers(block, "leaf_value", number)?;
    if leaf_values.len() != leaves || leaves == 0 {
        return Err(invalid(format!("tree {number}: {} leaf values for {leaves} leaves", leaf_values.len())));
    }
    if leaves == 1 {
        return Ok(vec![EnsembleNode::Leaf { value: leaf_values[0] }]);
    }
    let internal = leaves - 1;
    let features: Vec<u32> = numbers(block, "split_feature", number)?;
    let thresholds: Vec<f64> = numbers(block, "threshold", number)?;
    let decision_types: Vec<u8> = numbers(block, "decision_type", number)?;
    let left: Vec<i64> = numbers(block, "left_child", number)?;
    let right: Vec<i64> = numbers(block, "right_child", number)?;
    if [features.len(), thresholds.len(), decision_types.len(), left.len(), right.len()]
        .iter()
        .any(|length| *length != internal)
    {
        return Err(invalid(format!("tree {number}: split arrays do not have {internal} entries")));
    }
    let boundaries: Vec<usize> = numbers(block, "cat_boundaries", number)?;
    let bitsets: Vec<u32> = numbers(block, "cat_threshold", number)?;
    let child = |value: i64| -> Result<u32> {
        // A negative child is leaf `!value`, stored after the internal nodes.
        let index = if value >= 0 {
            usize::try_from(value).ok()
        } else {
            usize::try_from(!value).ok().map(|leaf| internal + leaf)
        };
        index
            .filter(|index| *index < internal + leaves)
            .map(|index| index as u32)
            .ok_or_else(|| invalid(format!("tree {number}: child {value}")))
    };
    let mut nodes = Vec::with_capacity(internal + leaves);
    for index in 0..internal {
        let decision = decision_types[index];
        let (left, right) = (child(left[index])?, child(right[index])?);
        let default_left = decision & 2 != 0;
        if decision & 1 != 0 {
            // The threshold is the index of this node's bitset in `cat_boundaries`.
            let set = thresholds[index] as usize;
            let (start, end) = (boundaries.get(set).copied(), boundaries.get(set + 1).copied());
            let words = start
                .zip(end)
                .and_then(|(start, end)| bitsets.get(start..end))
                .ok_or_else(|| invalid(format!("tree {number}: categorical split {index} has no bitset")))?;
            nodes.push(EnsembleNode::Categorical {
                feature: features[index],
                categories: words.to_vec(),
                codes: CategoryCodes::Lightgbm,
                in_set_left: true,
                // LightGBM sends NaN right at categorical splits, whatever the default bit says.
                default_left: false,
                left,
                right,
            });
        } else {
            let missing = match (decision >> 2) & 3 {
                0 => Missing::NanIsZero,
                1 => Missing::Zero,
                2 => Missing::Nan,
                other => return Err(invalid(format!("tree {number}: missing type {other}"))),
            };
            nodes.push(EnsembleNode::Numeric {
                feature: features[index],
                threshold: thresholds[index],
                comparison: Comparison::LessOrEqual,
                missing,
                default_left,
                left,
                right,
            });
        }
    }
    nodes.extend(leaf_values.into_iter().map(|value| EnsembleNode::Leaf { value }));
    Ok(nodes)
}
