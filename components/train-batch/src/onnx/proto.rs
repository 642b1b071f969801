//! The part of `onnx.proto` (ONNX IR) that a tree-ensemble or linear model uses, written by hand
//! with prost: field numbers are exactly those of onnx/onnx.proto, so these messages read any ONNX
//! file (fields they do not declare are skipped) and what they write is a valid ONNX model.
//!
//! onnx.proto is proto2; prost writes proto3-style (defaults omitted, repeated scalars packed),
//! which every protobuf parser must accept, and a value left out reads back as its zero default.

/// A whole ONNX file: IR version, operator sets, one graph and metadata.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// ONNX IR version.
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    /// Operator set of each domain the graph uses.
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    /// Tool that wrote the model.
    #[prost(string, tag = "2")]
    pub producer_name: String,
    /// Version of that tool.
    #[prost(string, tag = "3")]
    pub producer_version: String,
    /// Reverse-DNS namespace of the model.
    #[prost(string, tag = "4")]
    pub domain: String,
    /// Version of the model itself.
    #[prost(int64, tag = "5")]
    pub model_version: i64,
    /// Free-form description.
    #[prost(string, tag = "6")]
    pub doc_string: String,
    /// The computation.
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    /// Key-value metadata.
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// One key-value metadata entry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringStringEntryProto {
    /// Key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// An operator set version for a domain ("" is the default `ai.onnx` domain).
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetIdProto {
    /// Domain: "", "ai.onnx" or e.g. "ai.onnx.ml".
    #[prost(string, tag = "1")]
    pub domain: String,
    /// Operator set version of that domain.
    #[prost(int64, tag = "2")]
    pub version: i64,
}

/// A graph: nodes in topological order, constant initialisers, inputs and outputs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    /// Nodes, topologically sorted.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// Graph name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Constant tensors (may also be listed among inputs).
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// Free-form description.
    #[prost(string, tag = "10")]
    pub doc_string: String,
    /// Graph inputs.
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// Graph outputs.
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
    /// Types of intermediate values.
    #[prost(message, repeated, tag = "13")]
    pub value_info: Vec<ValueInfoProto>,
}

/// One operator application.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    /// Input value names.
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// Output value names.
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// Node name.
    #[prost(string, tag = "3")]
    pub name: String,
    /// Operator name, e.g. `TreeEnsembleRegressor`.
    #[prost(string, tag = "4")]
    pub op_type: String,
    /// Operator domain, e.g. `ai.onnx.ml`.
    #[prost(string, tag = "7")]
    pub domain: String,
    /// Attributes.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    /// Free-form description.
    #[prost(string, tag = "6")]
    pub doc_string: String,
}

/// A named attribute of a node; `type` says which value field holds it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    /// Attribute name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Name of a function attribute this one refers to.
    #[prost(string, tag = "21")]
    pub ref_attr_name: String,
    /// Free-form description.
    #[prost(string, tag = "13")]
    pub doc_string: String,
    /// Which value field is set.
    #[prost(enumeration = "AttributeType", tag = "20")]
    pub r#type: i32,
    /// FLOAT value.
    #[prost(float, tag = "2")]
    pub f: f32,
    /// INT value.
    #[prost(int64, tag = "3")]
    pub i: i64,
    /// STRING value (bytes; UTF-8 by convention).
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    /// TENSOR value.
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    /// FLOATS value.
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    /// INTS value.
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    /// STRINGS value.
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub strings: Vec<Vec<u8>>,
    /// TENSORS value.
    #[prost(message, repeated, tag = "10")]
    pub tensors: Vec<TensorProto>,
}

/// `AttributeProto.AttributeType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum AttributeType {
    /// Not set.
    Undefined = 0,
    /// `f`.
    Float = 1,
    /// `i`.
    Int = 2,
    /// `s`.
    String = 3,
    /// `t`.
    Tensor = 4,
    /// `g` (not declared here).
    Graph = 5,
    /// `floats`.
    Floats = 6,
    /// `ints`.
    Ints = 7,
    /// `strings`.
    Strings = 8,
    /// `tensors`.
    Tensors = 9,
    /// `graphs` (not declared here).
    Graphs = 10,
    /// `sparse_tensor` (not declared here).
    SparseTensor = 11,
    /// `sparse_tensors` (not declared here).
    SparseTensors = 12,
    /// `tp` (not declared here).
    TypeProto = 13,
    /// `type_protos` (not declared here).
    TypeProtos = 14,
}

/// A graph value's name and type.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    /// Value name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value type.
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
    /// Free-form description.
    #[prost(string, tag = "3")]
    pub doc_string: String,
}

/// A value type; only dense tensors are declared (sequences, maps etc. are skipped on decode).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    /// The tensor type, when the value is a dense tensor.
    #[prost(oneof = "type_proto::Value", tags = "1")]
    pub value: Option<type_proto::Value>,
    /// Optional semantic denotation.
    #[prost(string, tag = "6")]
    pub denotation: String,
}

/// Nested types of [`TypeProto`].
pub mod type_proto {
    /// A dense tensor's element type and shape.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Tensor {
        /// A [`super::DataType`] value.
        #[prost(int32, tag = "1")]
        pub elem_type: i32,
        /// Shape; absent means unknown rank.
        #[prost(message, optional, tag = "2")]
        pub shape: Option<super::TensorShapeProto>,
    }

    /// `TypeProto.value`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        /// `tensor_type`.
        #[prost(message, tag = "1")]
        TensorType(Tensor),
    }
}

/// A tensor shape: one entry per axis.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// Axes.
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<tensor_shape_proto::Dimension>,
}

/// Nested types of [`TensorShapeProto`].
pub mod tensor_shape_proto {
    /// One axis: a fixed size, a symbolic name, or unknown.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        /// Size or symbol.
        #[prost(oneof = "dimension::Value", tags = "1, 2")]
        pub value: Option<dimension::Value>,
        /// Optional semantic denotation.
        #[prost(string, tag = "3")]
        pub denotation: String,
    }

    /// Nested types of [`Dimension`].
    pub mod dimension {
        /// `Dimension.value`.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            /// `dim_value`: a fixed size.
            #[prost(int64, tag = "1")]
            DimValue(i64),
            /// `dim_param`: a symbolic size such as "N".
            #[prost(string, tag = "2")]
            DimParam(String),
        }
    }
}

/// A constant tensor (initialisers, tensor attributes such as `nodes_values_as_tensor`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// Shape.
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// A [`DataType`] value.
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// FLOAT (and FLOAT16 etc. bit patterns) data.
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    /// INT32 and smaller integer data.
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    /// STRING data.
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub string_data: Vec<Vec<u8>>,
    /// INT64 data.
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    /// Tensor name.
    #[prost(string, tag = "8")]
    pub name: String,
    /// Free-form description.
    #[prost(string, tag = "12")]
    pub doc_string: String,
    /// Little-endian packed data of any fixed-size type.
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    /// DOUBLE data.
    #[prost(double, repeated, tag = "10")]
    pub double_data: Vec<f64>,
    /// UINT32 and UINT64 data.
    #[prost(uint64, repeated, tag = "11")]
    pub uint64_data: Vec<u64>,
}

/// `TensorProto.DataType` values used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DataType {
    /// Not set.
    Undefined = 0,
    /// f32.
    Float = 1,
    /// u8.
    Uint8 = 2,
    /// i8.
    Int8 = 3,
    /// i32.
    Int32 = 6,
    /// i64.
    Int64 = 7,
    /// String.
    String = 8,
    /// f64.
    Double = 11,
}

impl AttributeProto {
    /// The STRING value as UTF-8 text.
    pub fn string(&self) -> Option<&str> {
        std::str::from_utf8(&self.s).ok()
    }

    /// The FLOATS value, also when given as a FLOAT or DOUBLE tensor (`*_as_tensor` attributes).
    pub fn float_values(&self) -> Option<Vec<f64>> {
        match AttributeType::try_from(self.r#type).ok()? {
            AttributeType::Floats => Some(self.floats.iter().map(|&x| f64::from(x)).collect()),
            AttributeType::Float => Some(vec![f64::from(self.f)]),
            AttributeType::Tensor => self.t.as_ref()?.float_values(),
            _ => None,
        }
    }
}

impl TensorProto {
    /// Elements of a FLOAT or DOUBLE tensor as f64 (from typed fields or `raw_data`).
    pub fn float_values(&self) -> Option<Vec<f64>> {
        let raw = &self.raw_data;
        match DataType::try_from(self.data_type).ok()? {
            DataType::Float if !raw.is_empty() => raw.len().is_multiple_of(4).then(|| {
                raw.chunks_exact(4).map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))).collect()
            }),
            DataType::Float => Some(self.float_data.iter().map(|&x| f64::from(x)).collect()),
            DataType::Double if !raw.is_empty() => raw
                .len()
                .is_multiple_of(8)
                .then(|| raw.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes"))).collect()),
            DataType::Double => Some(self.double_data.clone()),
            _ => None,
        }
    }
}

impl ValueInfoProto {
    /// Element type and dimensions (None: unknown or symbolic) of a dense tensor value.
    pub fn tensor_shape(&self) -> Option<(i32, Vec<Option<i64>>)> {
        let type_proto::Value::TensorType(t) = self.r#type.as_ref()?.value.as_ref()?;
        let dims = t
            .shape
            .as_ref()?
            .dim
            .iter()
            .map(|d| match d.value {
                Some(tensor_shape_proto::dimension::Value::DimValue(v)) => Some(v),
                _ => None,
            })
            .collect();
        Some((t.elem_type, dims))
    }
}
