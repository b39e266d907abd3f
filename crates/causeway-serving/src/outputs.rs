//! What a model answers, per task, as typed tensors: the protocol adapters encode these (OIP
//! JSON today) and never decide what a task's outputs are.
//!
//! - binary: `score` (FP64, the positive class's probability), `label` (BOOL, score at or above
//!   the version's threshold), and `class` (BYTES, the class name) when the classes have names;
//! - multi-class: `probabilities` (FP64, `[rows, classes]`), `label` (INT64, the most likely
//!   class's index), and `class` (BYTES) when the classes have names;
//! - regression: `prediction` (FP64).

use causeway_models::metrics::argmax;
use causeway_models::{ModelArtifact, Task};

/// A tensor's values, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// 64-bit floats.
    Fp64(Vec<f64>),
    /// 64-bit integers.
    Int64(Vec<i64>),
    /// Booleans.
    Bool(Vec<bool>),
    /// Strings.
    Bytes(Vec<String>),
}

impl TensorData {
    /// The Open Inference Protocol's name for the type.
    pub fn datatype(&self) -> &'static str {
        match self {
            Self::Fp64(_) => "FP64",
            Self::Int64(_) => "INT64",
            Self::Bool(_) => "BOOL",
            Self::Bytes(_) => "BYTES",
        }
    }
}

/// One named output tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputTensor {
    /// Its name.
    pub name: &'static str,
    /// Its shape (`[rows]`, or `[rows, classes]`).
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub data: TensorData,
}

/// The outputs a version of `task` answers, as (name, datatype, shape with -1 for rows), for
/// model metadata.
pub fn output_metadata(artifact: &ModelArtifact) -> Vec<(&'static str, &'static str, Vec<i64>)> {
    let named = !artifact.task.classes_are_indices();
    let mut outputs = match &artifact.task {
        Task::Binary { .. } => vec![("score", "FP64", vec![-1]), ("label", "BOOL", vec![-1])],
        Task::Multiclass { classes } => {
            vec![("probabilities", "FP64", vec![-1, classes.len() as i64]), ("label", "INT64", vec![-1])]
        }
        Task::Regression => vec![("prediction", "FP64", vec![-1])],
    };
    if named && artifact.task.outputs() >= 1 && !matches!(artifact.task, Task::Regression) {
        outputs.push(("class", "BYTES", vec![-1]));
    }
    outputs
}

/// The output tensors of `rows` rows whose model outputs (one per row, or one per class per row)
/// are `values`, for `task` at `threshold`.
pub fn output_tensors(task: &Task, threshold: f64, rows: usize, values: &[f64]) -> Vec<OutputTensor> {
    let named = !task.classes_are_indices();
    match task {
        Task::Binary { classes } => {
            let positive: Vec<bool> = values.iter().map(|score| *score >= threshold).collect();
            let mut tensors = vec![
                OutputTensor { name: "score", shape: vec![rows], data: TensorData::Fp64(values.to_vec()) },
                OutputTensor { name: "label", shape: vec![rows], data: TensorData::Bool(positive.clone()) },
            ];
            if named {
                let names = positive.iter().map(|positive| classes[usize::from(*positive)].clone()).collect();
                tensors.push(OutputTensor { name: "class", shape: vec![rows], data: TensorData::Bytes(names) });
            }
            tensors
        }
        Task::Multiclass { classes } => {
            let width = classes.len().max(1);
            let best: Vec<usize> = values.chunks(width).map(argmax).collect();
            let mut tensors = vec![
                OutputTensor {
                    name: "probabilities",
                    shape: vec![rows, classes.len()],
                    data: TensorData::Fp64(values.to_vec()),
                },
                OutputTensor {
                    name: "label",
                    shape: vec![rows],
                    data: TensorData::Int64(best.iter().map(|index| *index as i64).collect()),
                },
            ];
            if named {
                let names = best.iter().map(|index| classes[*index].clone()).collect();
                tensors.push(OutputTensor { name: "class", shape: vec![rows], data: TensorData::Bytes(names) });
            }
            tensors
        }
        Task::Regression => {
            vec![OutputTensor { name: "prediction", shape: vec![rows], data: TensorData::Fp64(values.to_vec()) }]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_task_answers_its_own_tensors() {
        let churn = Task::Binary { classes: vec!["no".into(), "yes".into()] };
        let tensors = output_tensors(&churn, 0.5, 2, &[0.7, 0.2]);
        let names: Vec<&str> = tensors.iter().map(|tensor| tensor.name).collect();
        assert_eq!(names, ["score", "label", "class"]);
        assert_eq!(tensors[2].data, TensorData::Bytes(vec!["yes".into(), "no".into()]));
        assert_eq!(output_tensors(&Task::binary(), 0.5, 1, &[0.7]).len(), 2, "0/1 classes have no names to add");
        let species = Task::Multiclass { classes: vec!["a".into(), "b".into(), "c".into()] };
        let tensors = output_tensors(&species, 0.5, 1, &[0.1, 0.7, 0.2]);
        assert_eq!(tensors[1].data, TensorData::Int64(vec![1]));
        assert_eq!(tensors[2].data, TensorData::Bytes(vec!["b".into()]));
        let price = output_tensors(&Task::Regression, 0.5, 1, &[250_000.0]);
        assert_eq!(price.len(), 1);
        assert_eq!((price[0].name, price[0].data.datatype()), ("prediction", "FP64"));
    }
}
