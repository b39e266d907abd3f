//! Open Inference Protocol v2 request and response bodies, and the conversion of input tensors
//! into encoded rows checked against a model signature.

use causeway_models::{FeatureKind, InputError, Signature};
use causeway_types::FeatureValue;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The largest number of rows one request may carry.
pub const MAX_ROWS: usize = 100_000;

/// An inference request.
#[derive(Debug, Deserialize)]
pub struct InferRequest {
    /// Optional request id, echoed back and used as the prediction-log id.
    #[serde(default)]
    pub id: Option<String>,
    /// The input tensors. (`parameters` and `outputs` are accepted and ignored: every
    /// output is returned.)
    pub inputs: Vec<InputTensor>,
}

/// One input tensor.
#[derive(Debug, Deserialize)]
pub struct InputTensor {
    /// Tensor name: a feature name, or any name for a single `[rows, features]` tensor.
    pub name: String,
    /// Shape.
    pub shape: Vec<i64>,
    /// Datatype (`FP64`, `FP32`, `INT64`, …, `BOOL`, `BYTES`).
    pub datatype: String,
    /// Row-major data, flat or nested. (Tensor `parameters` are accepted and ignored.)
    pub data: Value,
}

/// An inference response.
#[derive(Debug, Serialize)]
pub struct InferResponse {
    /// The model.
    pub model_name: String,
    /// The version that answered.
    pub model_version: String,
    /// The request id.
    pub id: String,
    /// Output tensors.
    pub outputs: Vec<OutputTensor>,
}

/// One output tensor.
#[derive(Debug, Serialize)]
pub struct OutputTensor {
    /// Name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Datatype.
    pub datatype: String,
    /// Data.
    pub data: Vec<Value>,
}

impl From<causeway_serving::outputs::OutputTensor> for OutputTensor {
    fn from(tensor: causeway_serving::outputs::OutputTensor) -> Self {
        use causeway_serving::outputs::TensorData;
        let datatype = tensor.data.datatype().to_string();
        let data = match tensor.data {
            TensorData::Fp64(values) => values.into_iter().map(Value::from).collect(),
            TensorData::Int64(values) => values.into_iter().map(Value::from).collect(),
            TensorData::Bool(values) => values.into_iter().map(Value::from).collect(),
            TensorData::Bytes(values) => values.into_iter().map(Value::from).collect(),
        };
        Self { name: tensor.name.to_string(), shape: tensor.shape, datatype, data }
    }
}

/// Tensor metadata for `GET /v2/models/{name}`.
#[derive(Debug, Serialize)]
pub struct TensorMetadata {
    /// Name.
    pub name: String,
    /// Datatype.
    pub datatype: String,
    /// Shape (-1 is variable).
    pub shape: Vec<i64>,
    /// A categorical input's vocabulary: send one of these as BYTES (or its index).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Value>,
}

const NUMERIC_TYPES: [&str; 11] =
    ["FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16", "UINT8"];

fn flatten(value: &Value, into: &mut Vec<Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| flatten(item, into)),
        other => into.push(other.clone()),
    }
}

fn element(tensor: &InputTensor, value: &Value) -> Result<FeatureValue, InputError> {
    let datatype = tensor.datatype.to_ascii_uppercase();
    match value {
        Value::Null => Ok(FeatureValue::Missing),
        Value::Number(number) if NUMERIC_TYPES.contains(&datatype.as_str()) => number
            .as_f64()
            .map(FeatureValue::Number)
            .ok_or_else(|| InputError::new(&tensor.name, "holds a number out of range")),
        Value::Bool(flag) if datatype == "BOOL" => Ok(FeatureValue::Number(f64::from(u8::from(*flag)))),
        Value::String(text) if datatype == "BYTES" => Ok(FeatureValue::Text(text.clone())),
        Value::String(text) if text.eq_ignore_ascii_case("nan") && NUMERIC_TYPES.contains(&datatype.as_str()) => {
            Ok(FeatureValue::Missing)
        }
        other => {
            Err(InputError::new(&tensor.name, format!("datatype {} does not match the value {other}", tensor.datatype)))
        }
    }
}

fn checked_elements(tensor: &InputTensor) -> Result<(Vec<Value>, Vec<usize>), InputError> {
    let datatype = tensor.datatype.to_ascii_uppercase();
    if !NUMERIC_TYPES.contains(&datatype.as_str()) && datatype != "BOOL" && datatype != "BYTES" {
        return Err(InputError::new(&tensor.name, format!("unsupported datatype {}", tensor.datatype)));
    }
    let shape: Vec<usize> = tensor
        .shape
        .iter()
        .map(|dimension| {
            usize::try_from(*dimension)
                .map_err(|_| InputError::new(&tensor.name, "shape dimensions must be non-negative"))
        })
        .collect::<Result<_, _>>()?;
    let expected = shape.iter().try_fold(1usize, |product, dimension| product.checked_mul(*dimension));
    let mut values = Vec::new();
    flatten(&tensor.data, &mut values);
    match expected {
        Some(count) if count == values.len() => Ok((values, shape)),
        _ => Err(InputError::new(
            &tensor.name,
            format!("shape {:?} does not match {} data elements", tensor.shape, values.len()),
        )),
    }
}

/// Encoded rows, and the categorical features whose value was a category the model never saw
/// (one index per such value).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EncodedRows {
    /// One encoded row per request row.
    pub rows: Vec<Vec<f64>>,
    /// Signature indices of unknown category values.
    pub unknown_categories: Vec<usize>,
}

/// Converts the request's tensors to encoded rows for `signature`: either one `[rows, features]`
/// tensor in signature order, or one `[rows]` (or `[rows, 1]`) tensor per feature, by name
/// (`BYTES` for categories), noting unknown categories.
pub fn encode_tensors(signature: &Signature, inputs: &[InputTensor]) -> Result<EncodedRows, InputError> {
    let mut unknown = Vec::new();
    let width = signature.width();
    let names = signature.names();
    if inputs.is_empty() {
        return Err(InputError::new("inputs", "at least one input tensor is required"));
    }
    if inputs.len() == 1 && !names.contains(&inputs[0].name.as_str()) {
        let tensor = &inputs[0];
        let (values, shape) = checked_elements(tensor)?;
        let (rows, columns) = match shape.as_slice() {
            [rows, columns] => (*rows, *columns),
            [columns] => (1, *columns),
            _ => {
                return Err(InputError::new(
                    &tensor.name,
                    format!("expected shape [rows, {width}], got {:?}", tensor.shape),
                ));
            }
        };
        if columns != width {
            return Err(InputError::new(
                &tensor.name,
                format!("expected {width} features per row ({}), got {columns}", names.join(", ")),
            ));
        }
        if rows > MAX_ROWS {
            return Err(InputError::new(&tensor.name, format!("at most {MAX_ROWS} rows per request")));
        }
        let mut encoded = Vec::with_capacity(rows);
        for row in values.chunks(width.max(1)) {
            let features: Vec<FeatureValue> =
                row.iter().map(|value| element(tensor, value)).collect::<Result<_, _>>()?;
            encoded.push(signature.encode_noting(&features, &mut unknown)?);
        }
        return Ok(EncodedRows { rows: encoded, unknown_categories: unknown });
    }
    for tensor in inputs {
        if !names.contains(&tensor.name.as_str()) {
            return Err(InputError::new(
                &tensor.name,
                format!("is not an input of this model; inputs are: {}", names.join(", ")),
            ));
        }
    }
    let mut columns: Vec<Vec<FeatureValue>> = Vec::with_capacity(width);
    let mut rows: Option<usize> = None;
    for feature in &signature.features {
        let tensor = inputs
            .iter()
            .find(|tensor| tensor.name == feature.name)
            .ok_or_else(|| InputError::new(&feature.name, "input tensor is missing"))?;
        let (values, shape) = checked_elements(tensor)?;
        let count = match shape.as_slice() {
            [count] | [count, 1] => *count,
            _ => {
                return Err(InputError::new(
                    &tensor.name,
                    format!("expected shape [rows] or [rows, 1], got {:?}", tensor.shape),
                ));
            }
        };
        if let Some(expected) = rows
            && expected != count
        {
            return Err(InputError::new(&tensor.name, format!("has {count} rows but other inputs have {expected}")));
        }
        if count > MAX_ROWS {
            return Err(InputError::new(&tensor.name, format!("at most {MAX_ROWS} rows per request")));
        }
        rows = Some(count);
        if matches!(feature.kind, FeatureKind::Numeric) && tensor.datatype.eq_ignore_ascii_case("BYTES") {
            return Err(InputError::new(&tensor.name, "is numeric: send a numeric datatype such as FP64"));
        }
        columns.push(values.iter().map(|value| element(tensor, value)).collect::<Result<_, _>>()?);
    }
    let rows = rows.unwrap_or(0);
    let encoded = (0..rows)
        .map(|row| {
            let values: Vec<FeatureValue> =
                columns.iter().map(|column| column.get(row).cloned().unwrap_or(FeatureValue::Missing)).collect();
            signature.encode_noting(&values, &mut unknown)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EncodedRows { rows: encoded, unknown_categories: unknown })
}

/// The input metadata of a signature: one tensor per feature.
pub fn input_metadata(signature: &Signature) -> Vec<TensorMetadata> {
    signature
        .features
        .iter()
        .map(|feature| TensorMetadata {
            name: feature.name.clone(),
            datatype: match feature.kind {
                FeatureKind::Numeric => "FP64".into(),
                FeatureKind::Categorical { .. } => "BYTES".into(),
            },
            shape: vec![-1],
            parameters: match &feature.kind {
                FeatureKind::Categorical { vocabulary } => Some(serde_json::json!({ "categories": vocabulary })),
                FeatureKind::Numeric => None,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use causeway_models::FeatureSpec;

    use super::*;

    fn signature() -> Signature {
        Signature {
            features: vec![
                FeatureSpec { name: "amount".into(), kind: FeatureKind::Numeric, nullable: false },
                FeatureSpec {
                    name: "channel".into(),
                    kind: FeatureKind::Categorical { vocabulary: vec!["in_store".into(), "online".into()] },
                    nullable: true,
                },
            ],
        }
    }

    fn tensor(json: Value) -> InputTensor {
        serde_json::from_value(json).expect("tensor")
    }

    #[test]
    fn accepts_one_matrix_or_one_tensor_per_feature() {
        let matrix = tensor(
            serde_json::json!({"name": "input", "shape": [2, 2], "datatype": "FP64", "data": [[1.0, 1], [2.0, 0]]}),
        );
        assert_eq!(encode_tensors(&signature(), &[matrix]).expect("rows").rows, vec![vec![1.0, 1.0], vec![2.0, 0.0]]);
        let by_name = [
            tensor(serde_json::json!({"name": "amount", "shape": [2], "datatype": "FP32", "data": [1.5, 2.5]})),
            tensor(
                serde_json::json!({"name": "channel", "shape": [2, 1], "datatype": "BYTES", "data": ["online", null]}),
            ),
        ];
        let encoded = encode_tensors(&signature(), &by_name).expect("rows");
        assert_eq!(encoded.rows[0], vec![1.5, 1.0]);
        assert!(encoded.rows[1][1].is_nan());
        assert!(encoded.unknown_categories.is_empty(), "null is missing, not unknown");
        let unseen = [
            tensor(serde_json::json!({"name": "amount", "shape": [2], "datatype": "FP64", "data": [1.5, 2.5]})),
            tensor(
                serde_json::json!({"name": "channel", "shape": [2], "datatype": "BYTES", "data": ["fax", "online"]}),
            ),
        ];
        let encoded = encode_tensors(&signature(), &unseen).expect("rows");
        assert!(encoded.rows[0][1].is_nan(), "an unseen category is scored as missing");
        assert_eq!(encoded.unknown_categories, vec![1], "and counted");
    }

    #[test]
    fn errors_name_the_offending_field() {
        let cases = [
            (serde_json::json!([{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]), "input"),
            (serde_json::json!([{"name": "input", "shape": [2, 2], "datatype": "FP64", "data": [1, 2, 3]}]), "input"),
            (serde_json::json!([{"name": "amount", "shape": [1], "datatype": "FP64", "data": [1]}]), "channel"),
            (
                serde_json::json!([{"name": "amount", "shape": [1], "datatype": "FP64", "data": [null]},
                                {"name": "channel", "shape": [1], "datatype": "BYTES", "data": ["online"]}]),
                "amount",
            ),
            (
                serde_json::json!([{"name": "amount", "shape": [1], "datatype": "BYTES", "data": ["x"]},
                                {"name": "channel", "shape": [1], "datatype": "BYTES", "data": ["online"]}]),
                "amount",
            ),
            (
                serde_json::json!([{"name": "amount", "shape": [1], "datatype": "FP64", "data": [1]},
                                {"name": "colour", "shape": [1], "datatype": "BYTES", "data": ["red"]}]),
                "colour",
            ),
            (serde_json::json!([{"name": "input", "shape": [1, 2], "datatype": "COMPLEX", "data": [1, 2]}]), "input"),
        ];
        for (inputs, field) in cases {
            let inputs: Vec<InputTensor> = serde_json::from_value(inputs.clone()).expect("tensors");
            let error = encode_tensors(&signature(), &inputs).expect_err("must fail");
            assert_eq!(error.field, field, "{error}");
        }
    }
}
