//! General ONNX graphs (anything other than a tree ensemble: scikit-learn pipelines, linear
//! models, neural networks) scored through onnxruntime, loaded at run time from the library named
//! by `ORT_DYLIB_PATH` (the `libonnxruntime.so` of the `onnxruntime` PyPI wheel) — never
//! downloaded, never linked. Needs the `onnxruntime` cargo feature (on in the `causeway` binary);
//! without it, or without the library, such a model still imports and stores but refuses to load
//! for scoring, with a message naming what is missing.
//!
//! The graph must take one float tensor `[rows, features]` and give a float tensor `[rows]`,
//! `[rows, 1]` (a score), `[rows, 2]` (class probabilities; the second column is the score) or
//! `[rows, classes]` with more than two classes (every class's probability, served as such; the
//! most likely class's probability is the row's score).
//! Integer label outputs are ignored; scikit-learn's ZipMap (a sequence of maps) is refused with
//! the conversion option that avoids it.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The most classes a multi-class graph may answer.
const MAX_CLASSES: usize = 65_536;

/// An ONNX graph and how to read its output. The bytes travel inside the artifact (base64).
#[derive(Debug, Serialize, Deserialize)]
pub struct OnnxGraph {
    /// The `.onnx` file.
    #[serde(with = "base64_bytes")]
    pub bytes: Vec<u8>,
    /// The input tensor's name.
    pub input: String,
    /// The output tensor read as the score.
    pub output: String,
    /// The column of a `[rows, 2]` output that is the score (`None`: the output is one column).
    pub column: Option<usize>,
    /// Input width.
    pub features: usize,
    /// The class count when the output is every class's probability (`[rows, classes]`, more
    /// than two classes); `None` when it is one score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<usize>,
    /// The session, made on first use.
    #[serde(skip)]
    session: OnceLock<std::result::Result<runtime::Scorer, String>>,
}

impl Clone for OnnxGraph {
    fn clone(&self) -> Self {
        Self {
            bytes: self.bytes.clone(),
            input: self.input.clone(),
            output: self.output.clone(),
            column: self.column,
            features: self.features,
            classes: self.classes,
            session: OnceLock::new(),
        }
    }
}

impl PartialEq for OnnxGraph {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
            && self.input == other.input
            && self.output == other.output
            && self.column == other.column
            && self.features == other.features
            && self.classes == other.classes
    }
}

impl OnnxGraph {
    /// Reads a graph's input and outputs through onnxruntime and chooses the score output.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let layout = runtime::inspect(bytes)?;
        Ok(Self {
            bytes: bytes.to_vec(),
            input: layout.input,
            output: layout.output,
            column: layout.column,
            features: layout.features,
            classes: layout.classes,
            session: OnceLock::new(),
        })
    }

    /// Checks the stored layout and makes the session now (so a missing runtime is reported
    /// when the model is loaded).
    pub fn prepare(&self) -> Result<()> {
        match (self.classes, self.column) {
            (None, None | Some(1)) => {}
            (Some(classes), None) if (3..=MAX_CLASSES).contains(&classes) => {}
            _ => {
                return Err(Error::Invalid(format!(
                    "an ONNX graph reading column {:?} of {:?} classes",
                    self.column, self.classes
                )));
            }
        }
        self.scorer().map(|_| ())
    }

    fn scorer(&self) -> Result<&runtime::Scorer> {
        self.session
            .get_or_init(|| {
                runtime::Scorer::new(&self.bytes, &self.input, &self.output).map_err(|error| error.to_string())
            })
            .as_ref()
            .map_err(|message| Error::Unsupported(message.clone()))
    }

    /// Values per row: the class count, or 1 for a score.
    pub fn outputs(&self) -> usize {
        self.classes.unwrap_or(1)
    }

    /// One score per row (each `features` wide; for a multi-class graph, the most likely class's
    /// probability); rows of another width, and runtime failures, give NaN.
    pub fn score_rows(&self, rows: &[Vec<f64>]) -> Vec<f64> {
        let outputs = self.score_outputs(rows);
        match self.classes {
            Some(classes) => outputs.chunks(classes).map(|row| row.iter().copied().fold(f64::NAN, f64::max)).collect(),
            None => outputs,
        }
    }

    /// Every output of every row, row after row (`rows.len() * outputs()` values): each class's
    /// probability for a multi-class graph, the score otherwise; NaN where scoring failed.
    pub fn score_outputs(&self, rows: &[Vec<f64>]) -> Vec<f64> {
        let wanted = self.outputs();
        let failed = || vec![f64::NAN; rows.len() * wanted];
        if rows.is_empty() || rows.iter().any(|row| row.len() != self.features) {
            return failed();
        }
        let Ok(scorer) = self.scorer() else { return failed() };
        let values: Vec<f32> = rows.iter().flatten().map(|value| *value as f32).collect();
        let Ok(output) = scorer.run(values, rows.len(), self.features) else { return failed() };
        let width = output.len() / rows.len();
        let columns: Vec<usize> = match self.classes {
            Some(classes) if width == classes => (0..classes).collect(),
            Some(_) => return failed(),
            None => vec![self.column.unwrap_or(0)],
        };
        (0..rows.len())
            .flat_map(|row| columns.iter().map(move |column| (row, *column)))
            .map(|(row, column)| output.get(row * width + column).map_or(f64::NAN, |value| f64::from(*value)))
            .collect()
    }
}

/// Tells the runtime where `libonnxruntime` is, before the first ONNX graph is used (otherwise
/// `ORT_DYLIB_PATH` is read). Returns false if the runtime was already initialized.
pub fn use_runtime_library(path: &std::path::Path) -> bool {
    runtime::set_library(path)
}

/// The graph's layout as [`OnnxGraph`] needs it.
struct Layout {
    input: String,
    output: String,
    column: Option<usize>,
    features: usize,
    classes: Option<usize>,
}

#[cfg(feature = "onnxruntime")]
mod runtime {
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, OnceLock};

    use ort::session::Session;
    use ort::value::{Tensor, TensorElementType, ValueType};

    use super::Layout;
    use crate::error::{Error, Result};

    static LIBRARY: OnceLock<PathBuf> = OnceLock::new();
    static ENVIRONMENT: OnceLock<std::result::Result<ort::environment::Environment, String>> = OnceLock::new();

    pub(super) fn set_library(path: &Path) -> bool {
        LIBRARY.set(path.to_path_buf()).is_ok() && ENVIRONMENT.get().is_none()
    }

    fn environment() -> Result<&'static ort::environment::Environment> {
        ENVIRONMENT
            .get_or_init(|| {
                let from_environment = std::env::var_os("ORT_DYLIB_PATH").filter(|path| !path.is_empty()).map(PathBuf::from);
                let path = LIBRARY.get().cloned().or(from_environment).ok_or_else(
                    || {
                        "scoring a general ONNX graph needs onnxruntime: set ORT_DYLIB_PATH to libonnxruntime.so \
                         (from `pip install onnxruntime==1.32.0`: site-packages/onnxruntime/capi/libonnxruntime.so.1.32.0)"
                            .to_string()
                    },
                )?;
                ort::init_from(&path)
                    .map_err(|error| format!("cannot load onnxruntime from {} (ORT_DYLIB_PATH): {error}", path.display()))?
                    .with_name("causeway")
                    .build()
                    .map_err(|error| format!("onnxruntime: {error}"))
            })
            .as_ref()
            .map_err(|message| Error::Unsupported(message.clone()))
    }

    fn session(bytes: &[u8]) -> Result<Session> {
        let environment = environment()?;
        let invalid = |error: ort::Error| Error::Invalid(format!("onnxruntime cannot load the graph: {error}"));
        Session::builder(environment)
            .map_err(invalid)?
            .with_intra_threads(1)
            .map_err(|error| invalid(error.into()))?
            .commit_from_memory(bytes)
            .map_err(invalid)
    }

    pub(super) fn inspect(bytes: &[u8]) -> Result<Layout> {
        let session = session(bytes)?;
        let [input] = session.inputs() else {
            return Err(Error::Unsupported(format!(
                "the graph takes {} inputs; Causeway feeds one float tensor [rows, features]",
                session.inputs().len()
            )));
        };
        let features = match input.dtype() {
            ValueType::Tensor { ty: TensorElementType::Float32, shape, .. } if shape.len() == 2 && shape[1] > 0 => {
                shape[1] as usize
            }
            other => {
                return Err(Error::Unsupported(format!(
                    "input `{}` is {other:?}; Causeway feeds one float tensor [rows, features] with a fixed feature count",
                    input.name()
                )));
            }
        };
        // A classifier also answers its labels as integers; without them, a wide float output may
        // be several regression targets or logits, which must not be served as probabilities.
        let labelled = session.outputs().iter().any(|output| {
            matches!(output.dtype(), ValueType::Tensor { ty: TensorElementType::Int64 | TensorElementType::Int32, .. })
        });
        let mut described = Vec::new();
        for output in session.outputs() {
            described.push(format!("{} {:?}", output.name(), output.dtype()));
            if let ValueType::Tensor { ty: TensorElementType::Float32, shape, .. } = output.dtype() {
                let (column, classes) = match shape.len() {
                    1 => (None, None),
                    2 if shape[1] == 1 => (None, None),
                    2 if shape[1] == 2 => (Some(1), None),
                    2 if shape[1] > 2 && labelled => (None, Some(shape[1] as usize)),
                    _ => {
                        return Err(Error::Unsupported(format!(
                            "output `{}` has shape {shape:?}; Causeway reads a score [rows] or [rows, 1], or class \
                             probabilities [rows, classes] with a fixed class count beside an integer label output",
                            output.name()
                        )));
                    }
                };
                return Ok(Layout {
                    input: input.name().to_string(),
                    output: output.name().to_string(),
                    column,
                    features,
                    classes,
                });
            }
        }
        Err(Error::Unsupported(format!(
            "no float tensor output to read a score from (outputs: {}); for scikit-learn, convert with \
             options={{'zipmap': False}}",
            described.join(", ")
        )))
    }

    /// One session; onnxruntime runs need exclusive access, so calls queue on the mutex.
    pub(super) struct Scorer {
        session: Mutex<Session>,
        input: String,
        output: String,
    }

    impl Scorer {
        pub(super) fn new(bytes: &[u8], input: &str, output: &str) -> Result<Self> {
            Ok(Self { session: Mutex::new(session(bytes)?), input: input.to_string(), output: output.to_string() })
        }

        pub(super) fn run(&self, values: Vec<f32>, rows: usize, features: usize) -> Result<Vec<f32>> {
            let failed = |error: ort::Error| Error::Invalid(format!("onnxruntime: {error}"));
            let tensor = Tensor::from_array((vec![rows as i64, features as i64], values)).map_err(failed)?;
            let mut session = self.session.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let outputs = session.run(ort::inputs![self.input.as_str() => tensor]).map_err(failed)?;
            let value = outputs
                .get(&self.output)
                .ok_or_else(|| Error::Invalid(format!("the graph gave no output `{}`", self.output)))?;
            let (_, data) = value.try_extract_tensor::<f32>().map_err(failed)?;
            Ok(data.to_vec())
        }
    }
}

#[cfg(not(feature = "onnxruntime"))]
mod runtime {
    use std::path::Path;

    use super::Layout;
    use crate::error::{Error, Result};

    const MISSING: &str = "scoring a general ONNX graph needs a build with the `onnxruntime` feature";

    pub(super) fn set_library(_path: &Path) -> bool {
        false
    }

    pub(super) fn inspect(_bytes: &[u8]) -> Result<Layout> {
        Err(Error::Unsupported(MISSING.into()))
    }

    pub(super) struct Scorer;

    impl Scorer {
        pub(super) fn new(_bytes: &[u8], _input: &str, _output: &str) -> Result<Self> {
            Err(Error::Unsupported(MISSING.into()))
        }

        pub(super) fn run(&self, _values: Vec<f32>, _rows: usize, _features: usize) -> Result<Vec<f32>> {
            Err(Error::Unsupported(MISSING.into()))
        }
    }
}

impl std::fmt::Debug for runtime::Scorer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("onnxruntime session")
    }
}

/// The graph's bytes inside the JSON artifact, as standard base64 (`causeway_types::base64`).
mod base64_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&causeway_types::base64::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        causeway_types::base64::decode(&text)
            .ok_or_else(|| serde::de::Error::custom("invalid base64 in the ONNX graph's bytes"))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn the_bytes_are_base64_in_the_artifact() {
            let value = serde_json::to_value(super::super::OnnxGraphBytes(b"foobar".to_vec())).unwrap_or_default();
            assert_eq!(value, serde_json::json!("Zm9vYmFy"));
        }
    }
}

#[cfg(test)]
#[derive(Serialize)]
struct OnnxGraphBytes(#[serde(with = "base64_bytes")] Vec<u8>);
