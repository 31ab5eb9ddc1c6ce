//! A GGUF reader that validates before it trusts.
//!
//! The file is memory-mapped; every length, count, dimension, type and offset
//! read from it is checked against the bytes that are actually there before it
//! is used, so a truncated or hostile file produces a [`GgufError`] and never a
//! panic, an out-of-bounds read or an allocation sized by an attacker.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::quantized::GgmlDType;

const MAGIC: &[u8; 4] = b"GGUF";
/// Far above any real model (a 70B Llama has ~723 tensors) and small enough
/// that the bookkeeping for a hostile count cannot hurt.
const MAX_TENSORS: u64 = 65_536;
const MAX_METADATA_KEYS: u64 = 65_536;
const MAX_STRING_BYTES: u64 = 16 << 20;
const MAX_ARRAY_DEPTH: usize = 2;
const MAX_DIMS: u32 = 4;
/// One dimension of a real model stays far below this (vocabularies are
/// ~256k, hidden sizes ~16k).
const MAX_DIM: u64 = 1 << 24;
const DEFAULT_ALIGNMENT: u64 = 32;

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot read model file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("not a GGUF file (bad magic bytes)")]
    BadMagic,
    #[error("unsupported GGUF version {0} (supported: 2, 3)")]
    Version(u32),
    #[error("GGUF file is truncated: {0} needs bytes beyond the end of the file")]
    Truncated(String),
    #[error("GGUF file is invalid: {0}")]
    Invalid(String),
    #[error("GGUF metadata key `{0}` is missing")]
    MissingKey(String),
    #[error("GGUF metadata key `{key}` has the wrong type (expected {expected})")]
    WrongType { key: String, expected: &'static str },
    #[error("tensor `{0}` is missing from the model file")]
    MissingTensor(String),
}

pub type Result<T> = std::result::Result<T, GgufError>;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            Value::Bool(v) => Some(v.into()),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// Where one tensor lives in the file, already checked to lie inside it.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// GGUF order: `dims[0]` is the innermost (row length).
    pub dims: Vec<u64>,
    pub dtype: GgmlDType,
    /// Absolute byte offset in the file.
    pub offset: usize,
    pub size: usize,
}

impl TensorInfo {
    /// The shape in candle's order (outermost first).
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}

/// The parsed header of a GGUF file plus the bytes it describes.
pub struct Gguf {
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    bytes: Bytes,
}

enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

impl Gguf {
    pub fn open(path: &Path) -> Result<Gguf> {
        let io = |source| GgufError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and private to this process. A file
        // truncated underneath us by another process would raise SIGBUS; the
        // models directory is owned by the service and written only by admins.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Gguf::parse(Bytes::Mapped(map))
    }

    /// Parse a GGUF held in memory (used by tests and by `bench synth-gguf`).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Gguf> {
        Gguf::parse(Bytes::Owned(bytes))
    }

    fn parse(bytes: Bytes) -> Result<Gguf> {
        let (version, metadata, tensors) = {
            let mut r = Reader {
                buf: bytes.as_slice(),
                pos: 0,
            };
            let magic = r.take(4, "magic")?;
            if magic != MAGIC {
                return Err(GgufError::BadMagic);
            }
            let version = r.u32("version")?;
            if !(2..=3).contains(&version) {
                return Err(GgufError::Version(version));
            }
            let tensor_count = r.u64("tensor count")?;
            let kv_count = r.u64("metadata count")?;
            if tensor_count > MAX_TENSORS {
                return Err(invalid(format!("{tensor_count} tensors is not plausible")));
            }
            if kv_count > MAX_METADATA_KEYS {
                return Err(invalid(format!(
                    "{kv_count} metadata keys is not plausible"
                )));
            }
            let mut metadata = BTreeMap::new();
            for _ in 0..kv_count {
                let key = r.string("metadata key")?;
                let value_type = r.u32("metadata value type")?;
                let value = r.value(value_type, &key, 0)?;
                if metadata.insert(key.clone(), value).is_some() {
                    return Err(invalid(format!("metadata key `{key}` appears twice")));
                }
            }
            let alignment = match metadata.get("general.alignment") {
                None => DEFAULT_ALIGNMENT,
                Some(v) => v
                    .as_u64()
                    .filter(|a| a.is_power_of_two() && *a >= 8 && *a <= 1 << 20)
                    .ok_or_else(|| invalid("general.alignment must be a power of two ≥ 8"))?,
            };
            let mut raw = Vec::with_capacity(tensor_count as usize);
            for _ in 0..tensor_count {
                raw.push(r.tensor_info()?);
            }
            let data_start = align_up(r.pos as u64, alignment);
            let file_len = r.buf.len() as u64;
            let tensors = locate_tensors(raw, data_start, alignment, file_len)?;
            (version, metadata, tensors)
        };
        Ok(Gguf {
            version,
            metadata,
            tensors,
            bytes,
        })
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The bytes of a tensor; in range by construction.
    pub fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        &self.bytes.as_slice()[info.offset..info.offset + info.size]
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    pub fn string(&self, key: &str) -> Result<&str> {
        self.get(key)
            .ok_or_else(|| GgufError::MissingKey(key.to_string()))?
            .as_str()
            .ok_or(GgufError::WrongType {
                key: key.to_string(),
                expected: "string",
            })
    }

    pub fn u64(&self, key: &str) -> Result<u64> {
        self.get(key)
            .ok_or_else(|| GgufError::MissingKey(key.to_string()))?
            .as_u64()
            .ok_or(GgufError::WrongType {
                key: key.to_string(),
                expected: "unsigned integer",
            })
    }

    pub fn f64(&self, key: &str) -> Result<f64> {
        self.get(key)
            .ok_or_else(|| GgufError::MissingKey(key.to_string()))?
            .as_f64()
            .ok_or(GgufError::WrongType {
                key: key.to_string(),
                expected: "number",
            })
    }

    pub fn array(&self, key: &str) -> Result<&[Value]> {
        match self.get(key) {
            None => Err(GgufError::MissingKey(key.to_string())),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(GgufError::WrongType {
                key: key.to_string(),
                expected: "array",
            }),
        }
    }

    pub fn file_len(&self) -> usize {
        self.bytes.as_slice().len()
    }
}

fn invalid(msg: impl Into<String>) -> GgufError {
    GgufError::Invalid(msg.into())
}

fn align_up(v: u64, alignment: u64) -> u64 {
    v.div_ceil(alignment) * alignment
}

struct RawTensor {
    name: String,
    dims: Vec<u64>,
    type_id: u32,
    offset: u64,
}

/// Check every tensor's type, shape and byte range, and that no two overlap.
fn locate_tensors(
    raw: Vec<RawTensor>,
    data_start: u64,
    alignment: u64,
    file_len: u64,
) -> Result<Vec<TensorInfo>> {
    let mut seen = std::collections::HashSet::new();
    let mut tensors = Vec::with_capacity(raw.len());
    for t in raw {
        if !seen.insert(t.name.clone()) {
            return Err(invalid(format!("tensor `{}` appears twice", t.name)));
        }
        let dtype = dtype_from_id(t.type_id).ok_or_else(|| {
            invalid(format!(
                "tensor `{}` has unknown or unsupported type id {}",
                t.name, t.type_id
            ))
        })?;
        let elements = t
            .dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| invalid(format!("tensor `{}` has too many elements", t.name)))?;
        let block = dtype.block_size() as u64;
        if t.dims[0] % block != 0 {
            return Err(invalid(format!(
                "tensor `{}`: row length {} is not a multiple of the {:?} block size {block}",
                t.name, t.dims[0], dtype
            )));
        }
        let size = (elements / block)
            .checked_mul(dtype.type_size() as u64)
            .ok_or_else(|| invalid(format!("tensor `{}` is too large", t.name)))?;
        if t.offset % alignment != 0 {
            return Err(invalid(format!(
                "tensor `{}` offset {} is not aligned to {alignment}",
                t.name, t.offset
            )));
        }
        let start = data_start
            .checked_add(t.offset)
            .ok_or_else(|| invalid(format!("tensor `{}` offset overflows", t.name)))?;
        let end = start
            .checked_add(size)
            .ok_or_else(|| invalid(format!("tensor `{}` size overflows", t.name)))?;
        if end > file_len {
            return Err(GgufError::Truncated(format!(
                "tensor `{}` (bytes {start}..{end} of a {file_len}-byte file)",
                t.name
            )));
        }
        tensors.push(TensorInfo {
            name: t.name,
            dims: t.dims,
            dtype,
            offset: start as usize,
            size: size as usize,
        });
    }
    let mut ranges: Vec<(usize, usize, &str)> = tensors
        .iter()
        .filter(|t| t.size > 0)
        .map(|t| (t.offset, t.offset + t.size, t.name.as_str()))
        .collect();
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        if pair[1].0 < pair[0].1 {
            return Err(invalid(format!(
                "tensors `{}` and `{}` overlap",
                pair[0].2, pair[1].2
            )));
        }
    }
    Ok(tensors)
}

/// GGML type ids (ggml.h) for the types this engine can compute with.
pub fn dtype_from_id(id: u32) -> Option<GgmlDType> {
    Some(match id {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        30 => GgmlDType::BF16,
        _ => return None,
    })
}

pub fn dtype_id(dtype: GgmlDType) -> u32 {
    match dtype {
        GgmlDType::F32 => 0,
        GgmlDType::F16 => 1,
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q4_1 => 3,
        GgmlDType::Q5_0 => 6,
        GgmlDType::Q5_1 => 7,
        GgmlDType::Q8_0 => 8,
        GgmlDType::Q8_1 => 9,
        GgmlDType::Q2K => 10,
        GgmlDType::Q3K => 11,
        GgmlDType::Q4K => 12,
        GgmlDType::Q5K => 13,
        GgmlDType::Q6K => 14,
        GgmlDType::Q8K => 15,
        GgmlDType::BF16 => 30,
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(GgufError::Truncated(what.to_string()));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.u64(what)?;
        if len > MAX_STRING_BYTES {
            return Err(invalid(format!(
                "{what}: a {len}-byte string is not plausible"
            )));
        }
        let bytes = self.take(len as usize, what)?;
        // Real vocabularies contain a few invalid sequences (partial UTF-8
        // byte tokens); keep them readable instead of rejecting the model.
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn value(&mut self, value_type: u32, key: &str, depth: usize) -> Result<Value> {
        Ok(match value_type {
            0 => Value::U8(self.array::<1>(key)?[0]),
            1 => Value::I8(self.array::<1>(key)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.array(key)?)),
            3 => Value::I16(i16::from_le_bytes(self.array(key)?)),
            4 => Value::U32(self.u32(key)?),
            5 => Value::I32(i32::from_le_bytes(self.array(key)?)),
            6 => Value::F32(f32::from_le_bytes(self.array(key)?)),
            7 => match self.array::<1>(key)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(invalid(format!("`{key}`: {b} is not a boolean"))),
            },
            8 => Value::String(self.string(key)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(invalid(format!("`{key}`: arrays nested too deeply")));
                }
                let item_type = self.u32(key)?;
                let count = self.u64(key)?;
                // Every item takes at least one byte, so a count larger than
                // what is left cannot be honest; checking first keeps a
                // hostile count from sizing an allocation.
                if count > self.remaining() as u64 {
                    return Err(GgufError::Truncated(format!(
                        "array `{key}` of {count} items"
                    )));
                }
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(self.value(item_type, key, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64(key)?),
            11 => Value::I64(i64::from_le_bytes(self.array(key)?)),
            12 => Value::F64(f64::from_le_bytes(self.array(key)?)),
            t => return Err(invalid(format!("`{key}` has unknown value type {t}"))),
        })
    }

    fn tensor_info(&mut self) -> Result<RawTensor> {
        let name = self.string("tensor name")?;
        let n_dims = self.u32("tensor dimensions")?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(invalid(format!("tensor `{name}` has {n_dims} dimensions")));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let d = self.u64("tensor dimension")?;
            if d == 0 || d > MAX_DIM {
                return Err(invalid(format!("tensor `{name}` has dimension {d}")));
            }
            dims.push(d);
        }
        let type_id = self.u32("tensor type")?;
        let offset = self.u64("tensor offset")?;
        Ok(RawTensor {
            name,
            dims,
            type_id,
            offset,
        })
    }
}

/// Writes GGUF files (version 3): used by `bench synth-gguf` and by tests
/// that build hostile variants of a real file.
/// A tensor to write: name, dims, type, bytes (None: produced by the fill
/// callback at write time).
type PendingTensor = (String, Vec<u64>, GgmlDType, Option<Vec<u8>>);

pub struct Writer {
    metadata: Vec<(String, Value)>,
    tensors: Vec<PendingTensor>,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

impl Writer {
    pub fn new() -> Writer {
        Writer {
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }

    pub fn meta(&mut self, key: &str, value: Value) -> &mut Self {
        self.metadata.push((key.to_string(), value));
        self
    }

    /// `dims` in GGUF order (row length first); `data` already encoded, or
    /// `None` to have the fill callback of [`Writer::write_to`] produce it.
    pub fn tensor(&mut self, name: &str, dims: Vec<u64>, dtype: GgmlDType, data: Option<Vec<u8>>) {
        self.tensors.push((name.to_string(), dims, dtype, data));
    }

    fn tensor_size(dims: &[u64], dtype: GgmlDType) -> usize {
        let elements: u64 = dims.iter().product();
        (elements as usize / dtype.block_size()) * dtype.type_size()
    }

    /// Stream the file to `out`; tensors without data are filled by `fill`
    /// one at a time, so a 4 GB file never needs 4 GB of memory.
    pub fn write_to(
        &self,
        out: &mut impl std::io::Write,
        mut fill: impl FnMut(&str, GgmlDType, &mut [u8]),
    ) -> std::io::Result<()> {
        let mut header = Vec::new();
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&3u32.to_le_bytes());
        header.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        header.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_string(&mut header, key);
            header.extend_from_slice(&value_type_id(value).to_le_bytes());
            put_value(&mut header, value);
        }
        let mut offset = 0u64;
        for (name, dims, dtype, data) in &self.tensors {
            put_string(&mut header, name);
            header.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                header.extend_from_slice(&d.to_le_bytes());
            }
            header.extend_from_slice(&dtype_id(*dtype).to_le_bytes());
            header.extend_from_slice(&offset.to_le_bytes());
            let len = data
                .as_ref()
                .map_or_else(|| Writer::tensor_size(dims, *dtype), Vec::len);
            offset = align_up(offset + len as u64, DEFAULT_ALIGNMENT);
        }
        let padded = align_up(header.len() as u64, DEFAULT_ALIGNMENT) as usize;
        header.resize(padded, 0);
        out.write_all(&header)?;
        let mut scratch = Vec::new();
        for (name, dims, dtype, data) in &self.tensors {
            let bytes: &[u8] = match data {
                Some(d) => d,
                None => {
                    scratch.clear();
                    scratch.resize(Writer::tensor_size(dims, *dtype), 0);
                    fill(name, *dtype, &mut scratch);
                    &scratch
                }
            };
            out.write_all(bytes)?;
            let pad = align_up(bytes.len() as u64, DEFAULT_ALIGNMENT) as usize - bytes.len();
            out.write_all(&vec![0u8; pad])?;
        }
        Ok(())
    }
}

fn put_string(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn value_type_id(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn put_value(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => buf.push(*x),
        Value::I8(x) => buf.push(*x as u8),
        Value::U16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => buf.push(u8::from(*x)),
        Value::String(s) => put_string(buf, s),
        Value::Array(items) => {
            let item_type = items.first().map(value_type_id).unwrap_or(4);
            buf.extend_from_slice(&item_type.to_le_bytes());
            buf.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                put_value(buf, item);
            }
        }
        Value::U64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => buf.extend_from_slice(&x.to_le_bytes()),
    }
}
