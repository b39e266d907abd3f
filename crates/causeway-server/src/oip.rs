//! Open Inference Protocol v2 request and response bodies, and the conversion of input tensors
//! into encoded rows checked against a model signature.

use causeway_models::{FeatureKind, InputError, Signature};
use causeway_types::FeatureValue;
use serde::{Deserialize, Serialize};

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
    pub data: TensorValues,
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
    /// Data, flat, in row-major order (a non-finite number is written as `null`).
    pub data: OutputData,
}

/// An output tensor's elements, written as a JSON array straight from the typed buffer.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum OutputData {
    /// Floats.
    Fp64(Vec<f64>),
    /// Integers.
    Int64(Vec<i64>),
    /// Booleans.
    Bool(Vec<bool>),
    /// Strings.
    Bytes(Vec<String>),
}

impl From<causeway_serving::outputs::OutputTensor> for OutputTensor {
    fn from(tensor: causeway_serving::outputs::OutputTensor) -> Self {
        use causeway_serving::outputs::TensorData;
        let datatype = tensor.data.datatype().to_string();
        let data = match tensor.data {
            TensorData::Fp64(values) => OutputData::Fp64(values),
            TensorData::Int64(values) => OutputData::Int64(values),
            TensorData::Bool(values) => OutputData::Bool(values),
            TensorData::Bytes(values) => OutputData::Bytes(values),
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

/// A tensor's `data`, flattened in row-major order as it is read — nested arrays or flat, no JSON
/// tree built and nothing copied twice.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TensorValues(pub Vec<Element>);

/// One element of a tensor's `data`.
#[derive(Debug, Clone, PartialEq)]
pub enum Element {
    /// A JSON number.
    Number(f64),
    /// `true` or `false`.
    Bool(bool),
    /// A string.
    Text(String),
    /// `null`: a missing value.
    Null,
    /// An object, which no datatype holds.
    Object,
}

impl std::fmt::Display for Element {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Number(number) => write!(formatter, "{number}"),
            Self::Bool(flag) => write!(formatter, "{flag}"),
            Self::Text(text) => write!(formatter, "{text:?}"),
            Self::Null => formatter.write_str("null"),
            Self::Object => formatter.write_str("an object"),
        }
    }
}

impl<'de> Deserialize<'de> for TensorValues {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut values = Vec::new();
        serde::de::DeserializeSeed::deserialize(Flatten(&mut values), deserializer)?;
        Ok(Self(values))
    }
}

/// Appends a JSON value's elements to a buffer, descending into arrays (serde_json bounds the
/// depth).
struct Flatten<'a>(&'a mut Vec<Element>);

impl<'de> serde::de::DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Flatten<'_> {
    type Value = ();
    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("tensor data: numbers, booleans, strings or null, in arrays")
    }
    fn visit_f64<E>(self, value: f64) -> Result<(), E> {
        self.0.push(Element::Number(value));
        Ok(())
    }
    fn visit_i64<E>(self, value: i64) -> Result<(), E> {
        self.0.push(Element::Number(value as f64));
        Ok(())
    }
    fn visit_u64<E>(self, value: u64) -> Result<(), E> {
        self.0.push(Element::Number(value as f64));
        Ok(())
    }
    fn visit_bool<E>(self, value: bool) -> Result<(), E> {
        self.0.push(Element::Bool(value));
        Ok(())
    }
    fn visit_str<E>(self, value: &str) -> Result<(), E> {
        self.0.push(Element::Text(value.to_string()));
        Ok(())
    }
    fn visit_string<E>(self, value: String) -> Result<(), E> {
        self.0.push(Element::Text(value));
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.push(Element::Null);
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        self.0.push(Element::Null);
        Ok(())
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut sequence: A) -> Result<(), A::Error> {
        while sequence.next_element_seed(Flatten(&mut *self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
        self.0.push(Element::Object);
        Ok(())
    }
}

/// What a tensor's datatype lets its elements be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holds {
    Numbers,
    Booleans,
    Strings,
}

/// A tensor's elements, checked against its datatype and shape once.
struct Checked<'a> {
    tensor: &'a InputTensor,
    holds: Holds,
    values: &'a [Element],
    shape: Vec<usize>,
}

impl Checked<'_> {
    fn element(&self, value: &Element) -> Result<FeatureValue, InputError> {
        match (value, self.holds) {
            (Element::Null, _) => Ok(FeatureValue::Missing),
            (Element::Number(number), Holds::Numbers) => Ok(FeatureValue::Number(*number)),
            (Element::Bool(flag), Holds::Booleans) => Ok(FeatureValue::Number(f64::from(u8::from(*flag)))),
            (Element::Text(text), Holds::Strings) => Ok(FeatureValue::Text(text.clone())),
            (Element::Text(text), Holds::Numbers) if text.eq_ignore_ascii_case("nan") => Ok(FeatureValue::Missing),
            (other, _) => Err(InputError::new(
                &self.tensor.name,
                format!("datatype {} does not match the value {other}", self.tensor.datatype),
            )),
        }
    }

    fn elements(&self, values: &[Element]) -> Result<Vec<FeatureValue>, InputError> {
        values.iter().map(|value| self.element(value)).collect()
    }
}

fn checked_elements(tensor: &InputTensor) -> Result<Checked<'_>, InputError> {
    let datatype = tensor.datatype.to_ascii_uppercase();
    let holds = match datatype.as_str() {
        "BOOL" => Holds::Booleans,
        "BYTES" => Holds::Strings,
        numeric if NUMERIC_TYPES.contains(&numeric) => Holds::Numbers,
        _ => return Err(InputError::new(&tensor.name, format!("unsupported datatype {}", tensor.datatype))),
    };
    let shape: Vec<usize> = tensor
        .shape
        .iter()
        .map(|dimension| {
            usize::try_from(*dimension)
                .map_err(|_| InputError::new(&tensor.name, "shape dimensions must be non-negative"))
        })
        .collect::<Result<_, _>>()?;
    let expected = shape.iter().try_fold(1usize, |product, dimension| product.checked_mul(*dimension));
    let values = tensor.data.0.as_slice();
    match expected {
        Some(count) if count == values.len() => Ok(Checked { tensor, holds, values, shape }),
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
        let checked = checked_elements(tensor)?;
        let (rows, columns) = match checked.shape.as_slice() {
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
        for row in checked.values.chunks(width.max(1)) {
            encoded.push(signature.encode_noting(&checked.elements(row)?, &mut unknown)?);
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
        let checked = checked_elements(tensor)?;
        let count = match checked.shape.as_slice() {
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
        if matches!(feature.kind, FeatureKind::Numeric) && checked.holds == Holds::Strings {
            return Err(InputError::new(&tensor.name, "is numeric: send a numeric datatype such as FP64"));
        }
        columns.push(checked.elements(checked.values)?);
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
    use serde_json::Value;

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

    #[test]
    fn data_is_flattened_as_it_is_read_whatever_its_nesting() {
        let nested: InputTensor = serde_json::from_str(
            r#"{"data": [[1, 2.5], [null, true], ["x", [[3]]]], "name": "t", "shape": [6], "datatype": "FP64"}"#,
        )
        .expect("tensor");
        assert_eq!(
            nested.data.0,
            vec![
                Element::Number(1.0),
                Element::Number(2.5),
                Element::Null,
                Element::Bool(true),
                Element::Text("x".into()),
                Element::Number(3.0)
            ]
        );
        let flat: InputTensor =
            serde_json::from_str(r#"{"name": "t", "shape": [2], "datatype": "FP32", "data": [7, -1e3]}"#)
                .expect("flat");
        assert_eq!(flat.data.0, vec![Element::Number(7.0), Element::Number(-1000.0)]);
        let scalar: InputTensor =
            serde_json::from_str(r#"{"name": "t", "shape": [1], "datatype": "FP32", "data": 4}"#).expect("scalar");
        assert_eq!(scalar.data.0, vec![Element::Number(4.0)]);
    }

    #[test]
    fn an_object_or_a_wrong_type_in_data_is_named_with_its_tensor() {
        let inputs: Vec<InputTensor> = serde_json::from_str(
            r#"[{"name": "input", "shape": [1, 2], "datatype": "FP64", "data": [1, {"a": [1, 2]}]}]"#,
        )
        .expect("tensors");
        let error = encode_tensors(&signature(), &inputs).expect_err("an object is no number");
        assert_eq!(error.field, "input");
        assert!(error.to_string().contains("does not match the value an object"), "{error}");
        let inputs: Vec<InputTensor> =
            serde_json::from_str(r#"[{"name": "input", "shape": [1, 2], "datatype": "BOOL", "data": [1, true]}]"#)
                .expect("tensors");
        let error = encode_tensors(&signature(), &inputs).expect_err("a number is no boolean");
        assert!(error.to_string().contains("datatype BOOL does not match the value 1"), "{error}");
    }

    #[test]
    fn outputs_are_written_from_their_typed_buffers_with_non_finite_numbers_as_null() {
        let tensor = OutputTensor {
            name: "score".into(),
            shape: vec![3],
            datatype: "FP64".into(),
            data: OutputData::Fp64(vec![0.25, f64::NAN, 1.0]),
        };
        assert_eq!(
            serde_json::to_value(&tensor).expect("json"),
            serde_json::json!({"name": "score", "shape": [3], "datatype": "FP64", "data": [0.25, null, 1.0]})
        );
        let labels = OutputData::Bool(vec![true, false]);
        assert_eq!(serde_json::to_string(&labels).expect("json"), "[true,false]");
    }
}
