//! ONNX-ML tree ensembles (`TreeEnsembleClassifier` / `TreeEnsembleRegressor` of `ai.onnx.ml`,
//! as skl2onnx and onnxmltools write them for scikit-learn, XGBoost and LightGBM models) into a
//! [`TreeEnsemble`] that scores as onnxruntime does: `f32` inputs and sums, each node's branch
//! mode, NaN by `nodes_missing_value_tracks_true`, onnxruntime's binary-classifier rules. Other
//! operators (a whole neural network, say) are refused by name. See docs/model-formats.md §4.

use std::collections::{BTreeMap, HashMap};

use crate::ensemble::{Comparison, EnsembleNode, EnsembleTree, Missing, Precision, Transform, TreeEnsemble};
use crate::error::{Error, Result};
use crate::import::protobuf::{self, Payload};
use crate::import::{FeatureDescription, Imported};

fn unsupported(what: impl std::fmt::Display) -> Error {
    Error::Unsupported(format!("ONNX model: {what}"))
}

fn invalid(what: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("ONNX model: {what}"))
}

/// The attributes of the tree-ensemble node, by name.
struct Attributes {
    ints: HashMap<String, Vec<i64>>,
    floats: HashMap<String, Vec<f64>>,
    strings: HashMap<String, Vec<String>>,
}

impl Attributes {
    fn ints(&self, name: &str) -> Vec<i64> {
        self.ints.get(name).cloned().unwrap_or_default()
    }

    fn floats(&self, name: &str) -> Vec<f64> {
        // `<name>_as_tensor` (opset 3+) carries doubles; either may be present.
        self.floats.get(&format!("{name}_as_tensor")).or_else(|| self.floats.get(name)).cloned().unwrap_or_default()
    }

    fn text(&self, name: &str, default: &str) -> String {
        self.strings.get(name).and_then(|values| values.first().cloned()).unwrap_or_else(|| default.to_string())
    }
}

fn read_attributes(node: &[(u32, Payload<'_>)]) -> Result<Attributes> {
    let mut attributes = Attributes { ints: HashMap::new(), floats: HashMap::new(), strings: HashMap::new() };
    for payload in protobuf::all(node, 5) {
        let Payload::Bytes(bytes) = payload else { continue };
        let attribute = protobuf::fields(bytes)?;
        let name = protobuf::text(&attribute, 1);
        let mut ints = protobuf::integers(&attribute, 8)?;
        ints.extend(protobuf::integer(&attribute, 3));
        let mut floats: Vec<f64> = protobuf::floats(&attribute, 7)?.into_iter().map(f64::from).collect();
        floats.extend(protobuf::floats(&attribute, 2)?.into_iter().map(f64::from));
        if let Some(tensor) = protobuf::bytes(&attribute, 5) {
            floats.extend(tensor_values(&protobuf::fields(tensor)?)?);
        }
        let mut strings = protobuf::strings(&attribute, 9);
        if let Some(single) = protobuf::bytes(&attribute, 4) {
            strings.push(String::from_utf8_lossy(single).into_owned());
        }
        if !ints.is_empty() {
            attributes.ints.insert(name.clone(), ints);
        }
        if !floats.is_empty() {
            attributes.floats.insert(name.clone(), floats);
        }
        if !strings.is_empty() {
            attributes.strings.insert(name, strings);
        }
    }
    Ok(attributes)
}

/// A float or double tensor's values (`float_data`, `double_data` or little-endian `raw_data`).
fn tensor_values(tensor: &[(u32, Payload<'_>)]) -> Result<Vec<f64>> {
    let data_type = protobuf::integer(tensor, 2).unwrap_or(0);
    let raw = protobuf::bytes(tensor, 9);
    match data_type {
        1 => match raw {
            Some(raw) => Ok(raw
                .chunks_exact(4)
                .map(|chunk| f64::from(f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]])))
                .collect()),
            None => Ok(protobuf::floats(tensor, 4)?.into_iter().map(f64::from).collect()),
        },
        11 => match raw {
            Some(raw) => {
                Ok(raw.chunks_exact(8).map(|chunk| f64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]))).collect())
            }
            None => protobuf::doubles(tensor, 10),
        },
        other => Err(unsupported(format!("tensor attributes of data type {other}"))),
    }
}

/// Reads an ONNX model file.
pub(crate) fn import(bytes: &[u8]) -> Result<Imported> {
    let model = protobuf::fields(bytes)?;
    let producer = format!("{} {}", protobuf::text(&model, 2), protobuf::text(&model, 3)).trim().to_string();
    let graph = protobuf::fields(protobuf::bytes(&model, 7).ok_or_else(|| invalid("no graph"))?)?;
    // Constant tensors by name (onnxmltools multiplies LightGBM probabilities by a constant `one`).
    let mut constants: HashMap<String, Vec<f64>> = HashMap::new();
    for payload in protobuf::all(&graph, 5) {
        let Payload::Bytes(bytes) = payload else { continue };
        let tensor = protobuf::fields(bytes)?;
        if let Ok(values) = tensor_values(&tensor) {
            constants.insert(protobuf::text(&tensor, 8), values);
        }
    }
    let mut ensemble_node = None;
    for payload in protobuf::all(&graph, 1) {
        let Payload::Bytes(bytes) = payload else { continue };
        let node = protobuf::fields(bytes)?;
        let op = protobuf::text(&node, 4);
        let domain = protobuf::text(&node, 7);
        match op.as_str() {
            "TreeEnsembleClassifier" | "TreeEnsembleRegressor" if domain == "ai.onnx.ml" => {
                if ensemble_node.is_some() {
                    return Err(unsupported("more than one tree-ensemble operator"));
                }
                ensemble_node = Some((op, node));
            }
            // What converters put around the ensemble: casts, identities, ZipMap on probabilities.
            "Cast" | "Identity" | "ZipMap" => {}
            "Mul"
                if protobuf::strings(&node, 1).iter().any(|input| {
                    constants
                        .get(input)
                        .is_some_and(|values| !values.is_empty() && values.iter().all(|value| *value == 1.0))
                }) => {}
            "TreeEnsemble" => return Err(unsupported("the opset-5 `TreeEnsemble` operator")),
            other => return Err(unsupported(format!("operator `{other}`; only tree ensembles import natively"))),
        }
    }
    let (op, node) = ensemble_node.ok_or_else(|| unsupported("no TreeEnsembleClassifier or TreeEnsembleRegressor"))?;
    let attributes = read_attributes(&node)?;
    let classifier = op == "TreeEnsembleClassifier";
    let prefix = if classifier { "class" } else { "target" };

    let tree_ids = attributes.ints("nodes_treeids");
    let node_ids = attributes.ints("nodes_nodeids");
    let feature_ids = attributes.ints("nodes_featureids");
    let thresholds = attributes.floats("nodes_values");
    let modes = attributes.strings.get("nodes_modes").cloned().unwrap_or_default();
    let true_ids = attributes.ints("nodes_truenodeids");
    let false_ids = attributes.ints("nodes_falsenodeids");
    let mut tracks_true = attributes.ints("nodes_missing_value_tracks_true");
    let count = tree_ids.len();
    tracks_true.resize(count, 0);
    if [node_ids.len(), feature_ids.len(), thresholds.len(), modes.len(), true_ids.len(), false_ids.len()]
        .iter()
        .any(|length| *length != count)
    {
        return Err(invalid("node attributes of different lengths"));
    }
    let leaf_trees = attributes.ints(&format!("{prefix}_treeids"));
    let leaf_nodes = attributes.ints(&format!("{prefix}_nodeids"));
    let leaf_outputs = attributes.ints(&format!("{prefix}_ids"));
    let leaf_weights = attributes.floats(&format!("{prefix}_weights"));
    if [leaf_nodes.len(), leaf_outputs.len(), leaf_weights.len()].iter().any(|length| *length != leaf_trees.len()) {
        return Err(invalid("leaf attributes of different lengths"));
    }
    let base_values = attributes.floats("base_values");
    let transform_name = attributes.text("post_transform", "NONE");

    // Outputs: classes (onnxruntime's single-column binary case is one output, P(class 1)).
    let labels = attributes
        .ints("classlabels_int64s")
        .len()
        .max(attributes.strings.get("classlabels_strings").map_or(0, Vec::len));
    let used_outputs: std::collections::BTreeSet<i64> = leaf_outputs.iter().copied().collect();
    let (outputs, transform, binary_single_column) = if classifier {
        if labels == 2 && used_outputs.len() <= 1 {
            let all_positive = leaf_weights.iter().all(|weight| *weight >= 0.0);
            let transform = match (all_positive, transform_name.as_str()) {
                (true, _) | (false, "NONE") => Transform::Identity,
                (false, "LOGISTIC") => Transform::Sigmoid { scale: 1.0 },
                (_, other) => return Err(unsupported(format!("post_transform {other} on a binary classifier"))),
            };
            (1, transform, true)
        } else {
            let transform = match transform_name.as_str() {
                "NONE" => Transform::Identity,
                "SOFTMAX" => Transform::Softmax,
                "LOGISTIC" => Transform::Sigmoid { scale: 1.0 },
                other => return Err(unsupported(format!("post_transform {other}"))),
            };
            (labels.max(1), transform, false)
        }
    } else {
        let targets = attributes.ints("n_targets").first().copied().unwrap_or(1);
        if targets != 1 {
            return Err(unsupported(format!("{targets} regression targets")));
        }
        if attributes.text("aggregate_function", "SUM") != "SUM" {
            return Err(unsupported(format!("aggregate_function {}", attributes.text("aggregate_function", "SUM"))));
        }
        let transform = match transform_name.as_str() {
            "NONE" => Transform::Identity,
            other => return Err(unsupported(format!("post_transform {other} on a regressor"))),
        };
        (1, transform, false)
    };
    let mut base_margins = vec![0.0; outputs];
    match (base_values.len(), binary_single_column) {
        (0, _) => {}
        (1, _) => base_margins[0] = f64::from(base_values[0] as f32),
        (count, false) if count == outputs => {
            base_margins = base_values.iter().map(|value| f64::from(*value as f32)).collect()
        }
        (count, _) => return Err(unsupported(format!("{count} base values for {outputs} outputs"))),
    }

    // Nodes grouped by tree, in order of first appearance; the first node of a tree is its root.
    let mut tree_order: Vec<i64> = Vec::new();
    let mut positions: HashMap<(i64, i64), usize> = HashMap::new();
    let mut local: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for index in 0..count {
        let tree = tree_ids[index];
        let members = local.entry(tree).or_default();
        if members.is_empty() {
            tree_order.push(tree);
        }
        positions.insert((tree, node_ids[index]), members.len());
        members.push(index);
    }
    // Leaf weights by (tree, node), per output.
    let mut leaf_values: HashMap<(i64, i64), BTreeMap<i64, f64>> = HashMap::new();
    for entry in 0..leaf_trees.len() {
        let output = if binary_single_column { 0 } else { leaf_outputs[entry] };
        *leaf_values.entry((leaf_trees[entry], leaf_nodes[entry])).or_default().entry(output).or_insert(0.0) +=
            f64::from(leaf_weights[entry] as f32);
    }
    let mut trees = Vec::new();
    for tree in &tree_order {
        let members = &local[tree];
        let outputs_used: std::collections::BTreeSet<i64> = members
            .iter()
            .filter_map(|index| leaf_values.get(&(*tree, node_ids[*index])))
            .flat_map(|values| values.keys().copied())
            .collect();
        for output in outputs_used {
            let group = u32::try_from(output)
                .ok()
                .filter(|group| (*group as usize) < outputs)
                .ok_or_else(|| invalid(format!("output {output}")))?;
            let child = |id: i64| -> Result<u32> {
                positions
                    .get(&(*tree, id))
                    .map(|position| *position as u32)
                    .ok_or_else(|| invalid(format!("tree {tree} has no node {id}")))
            };
            let nodes = members
                .iter()
                .map(|index| {
                    let index = *index;
                    let feature = u32::try_from(feature_ids[index]).map_err(|_| invalid("negative feature"))?;
                    let threshold = f64::from(thresholds[index] as f32);
                    let nan_true = tracks_true[index] != 0;
                    // "true" goes left for LEQ/LT; GTE/GT are the negations of LT/LEQ with the branches swapped.
                    let (comparison, left, right, default_left) = match modes[index].as_str() {
                        "LEAF" => {
                            let value = leaf_values
                                .get(&(*tree, node_ids[index]))
                                .and_then(|values| values.get(&output))
                                .copied()
                                .unwrap_or(0.0);
                            return Ok(EnsembleNode::Leaf { value });
                        }
                        "BRANCH_LEQ" => {
                            (Comparison::LessOrEqual, child(true_ids[index])?, child(false_ids[index])?, nan_true)
                        }
                        "BRANCH_LT" => (Comparison::Less, child(true_ids[index])?, child(false_ids[index])?, nan_true),
                        "BRANCH_GTE" => {
                            (Comparison::Less, child(false_ids[index])?, child(true_ids[index])?, !nan_true)
                        }
                        "BRANCH_GT" => {
                            (Comparison::LessOrEqual, child(false_ids[index])?, child(true_ids[index])?, !nan_true)
                        }
                        other => return Err(unsupported(format!("node mode {other}"))),
                    };
                    Ok(EnsembleNode::Numeric {
                        feature,
                        threshold,
                        comparison,
                        missing: Missing::Nan,
                        default_left,
                        left,
                        right,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            trees.push(EnsembleTree { nodes, group, weight: 1.0 });
        }
    }
    let features =
        graph_width(&graph)?.unwrap_or_else(|| feature_ids.iter().map(|id| *id as usize + 1).max().unwrap_or(0));
    let described = (0..features)
        .map(|index| FeatureDescription { name: format!("f{index}"), categorical: false, categories: None })
        .collect();
    let ensemble = TreeEnsemble {
        features,
        outputs,
        base_margins,
        trees,
        precision: Precision::Float32,
        average_over: None,
        transform,
        source: format!("onnx {op} ({producer})"),
        compiled: Default::default(),
    };
    ensemble.validate()?;
    Ok(Imported { ensemble, features: described, best_iteration: None })
}

/// The second dimension of the graph's first input, when fixed.
fn graph_width(graph: &[(u32, Payload<'_>)]) -> Result<Option<usize>> {
    let Some(Payload::Bytes(input)) = protobuf::all(graph, 11).next() else { return Ok(None) };
    let input = protobuf::fields(input)?;
    let Some(kind) = protobuf::bytes(&input, 2) else { return Ok(None) };
    let Some(tensor) = protobuf::bytes(&protobuf::fields(kind)?, 1) else { return Ok(None) };
    let Some(shape) = protobuf::bytes(&protobuf::fields(tensor)?, 2) else { return Ok(None) };
    let shape = protobuf::fields(shape)?;
    let dimensions: Vec<&[u8]> = protobuf::all(&shape, 1)
        .filter_map(|payload| match payload {
            Payload::Bytes(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    match dimensions.get(1) {
        Some(dimension) => {
            Ok(protobuf::integer(&protobuf::fields(dimension)?, 1).and_then(|value| usize::try_from(value).ok()))
        }
        None => Ok(None),
    }
}
