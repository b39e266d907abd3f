//! Importers: XGBoost (JSON, UBJSON), LightGBM (text) and ONNX-ML tree-ensemble models into a [`TreeEnsemble`] that
//! scores as the original library does. Anything a format can express that the engine cannot
//! score exactly is refused with an error naming it, never approximated.

mod document;
mod lightgbm;
mod onnx;
mod protobuf;
mod xgboost;

use std::collections::BTreeMap;

use crate::artifact::{Model, ModelArtifact};
use crate::ensemble::{Transform, TreeEnsemble};
use crate::error::{Error, Result};
use crate::signature::{FeatureKind, FeatureSpec, Signature};

/// The model file formats Causeway reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    /// XGBoost's JSON (`model.json`).
    XgboostJson,
    /// XGBoost's Universal Binary JSON (`model.ubj`, its default since 2.1).
    XgboostUbjson,
    /// LightGBM's text model (`model.txt`).
    LightgbmText,
    /// An ONNX model whose graph is one ONNX-ML tree ensemble (skl2onnx, onnxmltools).
    Onnx,
}

impl ModelFormat {
    /// Recognises a format from the file's first bytes.
    pub fn detect(bytes: &[u8]) -> Result<Self> {
        let start = bytes.iter().position(|byte| !byte.is_ascii_whitespace()).unwrap_or(bytes.len());
        let rest = &bytes[start..];
        if rest.starts_with(b"tree\n") || rest.starts_with(b"tree\r\n") {
            return Ok(Self::LightgbmText);
        }
        // An ONNX file is a protobuf ModelProto, which begins with field 1 (ir_version), a varint.
        if bytes.first() == Some(&0x08) && bytes.len() > 16 {
            return Ok(Self::Onnx);
        }
        match rest {
            [b'{', b'L' | b'i' | b'U' | b'I' | b'l', ..] => Ok(Self::XgboostUbjson),
            [b'{', ..] => Ok(Self::XgboostJson),
            _ => Err(Error::Unsupported(
                "unrecognised model file: expected an XGBoost model (.json or .ubj), a LightGBM model (.txt) or an ONNX tree ensemble (.onnx)".into(),
            )),
        }
    }
}

/// One input feature as the model file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureDescription {
    /// Its name (the library's default, such as `f3` or `Column_3`, when the file has none).
    pub name: String,
    /// Whether the model reads it as a category code.
    pub categorical: bool,
    /// The categories in code order, when the file names them (LightGBM's `pandas_categorical`,
    /// XGBoost's stored categories): requests may then send the category itself.
    pub categories: Option<Vec<String>>,
}

/// An imported model with what its file says about its inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The ensemble, scoring as the original does.
    pub ensemble: TreeEnsemble,
    /// The input features, in order.
    pub features: Vec<FeatureDescription>,
    /// The best iteration recorded by early stopping, when the file has one (XGBoost's
    /// `Booster.predict` still uses every tree, and so does the import).
    pub best_iteration: Option<i64>,
}

/// Reads a model file in any supported format.
pub fn import_model(bytes: &[u8]) -> Result<Imported> {
    import_as(bytes, ModelFormat::detect(bytes)?)
}

/// Reads a model file in the given format.
pub fn import_as(bytes: &[u8], format: ModelFormat) -> Result<Imported> {
    match format {
        ModelFormat::XgboostJson => xgboost::import(&document::parse_json(bytes)?),
        ModelFormat::XgboostUbjson => xgboost::import(&document::parse_ubjson(bytes)?),
        ModelFormat::LightgbmText => {
            let text =
                std::str::from_utf8(bytes).map_err(|_| Error::Invalid("LightGBM model: not UTF-8 text".into()))?;
            lightgbm::import(text)
        }
        ModelFormat::Onnx => onnx::import(bytes),
    }
}

impl Imported {
    /// A servable artifact: its signature names the file's features (categorical ones take
    /// their categories when the file names them, else their integer codes), every input may be
    /// missing, and, for binary models, a probability at or above `threshold` is the positive
    /// class.
    pub fn into_artifact(self, threshold: f64, mut metadata: BTreeMap<String, String>) -> Result<ModelArtifact> {
        let signature = Signature {
            features: self
                .features
                .iter()
                .map(|feature| FeatureSpec {
                    name: feature.name.clone(),
                    kind: match &feature.categories {
                        Some(vocabulary) if feature.categorical => {
                            FeatureKind::Categorical { vocabulary: vocabulary.clone() }
                        }
                        _ => FeatureKind::Numeric,
                    },
                    nullable: true,
                })
                .collect(),
        };
        metadata.insert("source".into(), self.ensemble.source.clone());
        let categorical: Vec<&str> = self
            .features
            .iter()
            .filter(|feature| feature.categorical && feature.categories.is_none())
            .map(|feature| feature.name.as_str())
            .collect();
        if !categorical.is_empty() {
            metadata.insert("categorical_codes".into(), categorical.join(","));
        }
        if !matches!(self.ensemble.transform, Transform::Sigmoid { .. }) {
            metadata.insert("output".into(), "not a probability (regression or counts)".into());
        }
        if let Some(best) = self.best_iteration {
            metadata.insert("best_iteration".into(), best.to_string());
        }
        ModelArtifact::new(Model::Ensemble(self.ensemble), signature, threshold, metadata)
    }
}
