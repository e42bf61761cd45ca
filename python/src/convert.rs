//! Python values ↔ labbook values.

use std::collections::BTreeMap;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use labbook_core::config::MAX_DEPTH;
use labbook_core::{ConfigValue, SeriesSummary};

/// An optional `str` argument named `what`: None, or valid UTF-8 text. A
/// str holding a lone surrogate (what `os.fsdecode` makes of undecodable
/// bytes) is not, and pyo3 alone would raise a UnicodeEncodeError that names
/// no argument.
pub fn text_arg(obj: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Option<String>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    let Ok(s) = obj.cast::<PyString>() else {
        let type_name = obj.get_type().name()?.to_string();
        return Err(PyTypeError::new_err(format!(
            "{what} must be a str, not {type_name}"
        )));
    };
    Ok(Some(utf8(s, what)?.into_owned()))
}

/// The UTF-8 of a Python str, or an error naming `what` if it holds a lone
/// surrogate.
pub fn utf8<'a>(s: &'a Bound<'_, PyString>, what: &str) -> PyResult<std::borrow::Cow<'a, str>> {
    s.to_cow().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what} is not valid UTF-8: it holds a lone surrogate (undecodable bytes decoded with surrogateescape?)"
        ))
    })
}

/// A config value from any Python object. Unknown objects are kept as their
/// `str()` (a `Path`, a dtype, an enum), as W&B does, rather than refused.
pub fn to_config_value(obj: &Bound<'_, PyAny>, key: &str, depth: usize) -> PyResult<ConfigValue> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "config key {key:?}: nested deeper than {MAX_DEPTH} levels"
        )));
    }
    if obj.is_none() {
        return Ok(ConfigValue::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(ConfigValue::Bool(b.is_true()));
    }
    if obj.cast::<PyInt>().is_ok() {
        return Ok(match obj.extract::<i64>() {
            Ok(i) => ConfigValue::Int(i),
            // Beyond i64: keep the digits exactly rather than round.
            Err(_) => ConfigValue::Str(obj.str()?.to_string()),
        });
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(ConfigValue::Float(f.value()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(ConfigValue::Str(s.to_cow()?.into_owned()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = BTreeMap::new();
        for (k, v) in d.iter() {
            let k = match k.cast::<PyString>() {
                Ok(s) => s.to_cow()?.into_owned(),
                Err(_) => k.str()?.to_string(),
            };
            let full = if key.is_empty() {
                k.clone()
            } else {
                format!("{key}.{k}")
            };
            map.insert(k, to_config_value(&v, &full, depth + 1)?);
        }
        return Ok(ConfigValue::Object(map));
    }
    if obj.cast::<PyList>().is_ok() || obj.cast::<PyTuple>().is_ok() {
        let items = obj
            .try_iter()?
            .map(|item| to_config_value(&item?, key, depth + 1))
            .collect::<PyResult<_>>()?;
        return Ok(ConfigValue::List(items));
    }
    // NumPy scalars and 0-d arrays, torch scalars: `.item()` gives a Python number.
    if obj.hasattr("item")?
        && obj.hasattr("dtype")?
        && let Ok(item) = obj.call_method0("item")
        && !item.is(obj)
    {
        return to_config_value(&item, key, depth + 1);
    }
    if obj.hasattr("tolist")?
        && let Ok(list) = obj.call_method0("tolist")
    {
        return to_config_value(&list, key, depth + 1);
    }
    Ok(ConfigValue::Str(obj.str()?.to_string()))
}

/// A top-level config mapping (`config=` of `init`, or `config.update`).
pub fn to_config_tree(obj: &Bound<'_, PyAny>) -> PyResult<BTreeMap<String, ConfigValue>> {
    if obj.is_none() {
        return Ok(BTreeMap::new());
    }
    // argparse.Namespace and similar objects: their attributes.
    let obj =
        if obj.cast::<PyDict>().is_err() && obj.hasattr("__dict__")? && !obj.hasattr("keys")? {
            obj.getattr("__dict__")?
        } else {
            obj.clone()
        };
    let dict = match obj.cast::<PyDict>() {
        Ok(d) => d.clone(),
        Err(_) => {
            let d = PyDict::new(obj.py());
            d.call_method1("update", (&obj,)).map_err(|_| {
                PyTypeError::new_err(
                    "config must be a dict (or a mapping, or an argparse.Namespace)",
                )
            })?;
            d
        }
    };
    match to_config_value(dict.as_any(), "", 0)? {
        ConfigValue::Object(map) => Ok(map),
        _ => Ok(BTreeMap::new()),
    }
}

pub fn config_value_to_py<'py>(
    py: Python<'py>,
    value: &ConfigValue,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        ConfigValue::Null => py.None().into_bound(py),
        ConfigValue::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        ConfigValue::Int(i) => i.into_pyobject(py)?.into_any(),
        ConfigValue::Float(f) => PyFloat::new(py, *f).into_any(),
        ConfigValue::Str(s) => PyString::new(py, s).into_any(),
        ConfigValue::List(items) => PyList::new(
            py,
            items
                .iter()
                .map(|v| config_value_to_py(py, v))
                .collect::<PyResult<Vec<_>>>()?,
        )?
        .into_any(),
        ConfigValue::Object(map) => {
            let d = PyDict::new(py);
            for (k, v) in map {
                d.set_item(k, config_value_to_py(py, v)?)?;
            }
            d.into_any()
        }
    })
}

/// JSON (as stored) to Python; the strings "NaN"/"Infinity"/"-Infinity" that
/// stand for non-finite floats are not touched here — callers that know a
/// field is numeric convert it.
pub fn json_to_py<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    config_value_to_py(py, &ConfigValue::from_json(value))
}

pub fn summary_to_py<'py>(py: Python<'py>, s: &SeriesSummary) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("count", s.count)?;
    d.set_item("last", s.last)?;
    d.set_item("last_step", s.last_step)?;
    d.set_item("min", s.min)?;
    d.set_item("max", s.max)?;
    Ok(d)
}

/// Eight-byte little-endian words from bytes of any alignment.
fn words(bytes: &[u8]) -> impl Iterator<Item = [u8; 8]> + '_ {
    bytes.chunks_exact(8).map(|c| {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        w
    })
}

/// The bytes of an array-like in the given NumPy dtype / `array` typecode,
/// when the object is a NumPy array or an `array.array`; `None` otherwise.
fn array_bytes(obj: &Bound<'_, PyAny>, dtype: &str, typecode: &str) -> PyResult<Option<Vec<u8>>> {
    let py = obj.py();
    if obj.hasattr("dtype")? && obj.hasattr("astype")? && obj.hasattr("tobytes")? {
        let kwargs = PyDict::new(py);
        kwargs.set_item("copy", false)?;
        let arr = obj.call_method("astype", (dtype,), Some(&kwargs))?;
        if arr.getattr("ndim")?.extract::<usize>()? != 1 {
            return Err(PyValueError::new_err(
                "arrays passed to log_series must be one-dimensional",
            ));
        }
        let bytes = arr.call_method1("tobytes", ("C",))?;
        return Ok(Some(bytes.cast::<PyBytes>()?.as_bytes().to_vec()));
    }
    if obj.hasattr("typecode")? && obj.hasattr("tobytes")? {
        let code: String = obj.getattr("typecode")?.extract()?;
        if code == typecode && cfg!(target_endian = "little") {
            let bytes = obj.call_method0("tobytes")?;
            return Ok(Some(bytes.cast::<PyBytes>()?.as_bytes().to_vec()));
        }
    }
    Ok(None)
}

/// A column's element type: its NumPy dtype, `array` typecode and name.
trait ColumnType: Sized + for<'a, 'py> FromPyObject<'a, 'py> {
    const DTYPE: &'static str;
    const TYPECODE: &'static str;
    const NOUN: &'static str;
    fn from_le(word: [u8; 8]) -> Self;
}

impl ColumnType for f64 {
    const DTYPE: &'static str = "float64";
    const TYPECODE: &'static str = "d";
    const NOUN: &'static str = "number";
    fn from_le(word: [u8; 8]) -> Self {
        f64::from_le_bytes(word)
    }
}

impl ColumnType for i64 {
    const DTYPE: &'static str = "int64";
    const TYPECODE: &'static str = "q";
    const NOUN: &'static str = "integer";
    fn from_le(word: [u8; 8]) -> Self {
        i64::from_le_bytes(word)
    }
}

/// A column from a NumPy array, an `array.array`, or any iterable. Arrays
/// are copied as one block, never element by element.
fn to_column<T: ColumnType>(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<T>> {
    if let Some(bytes) = array_bytes(obj, T::DTYPE, T::TYPECODE)? {
        return Ok(words(&bytes).map(T::from_le).collect());
    }
    let noun = T::NOUN;
    obj.try_iter()
        .map_err(|_| {
            PyTypeError::new_err(format!("{what} must be a sequence or array of {noun}s"))
        })?
        .enumerate()
        .map(|(i, item)| {
            item?.extract::<T>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "{what}[{i}] is not a{} {noun}",
                    if noun.starts_with('i') { "n" } else { "" }
                ))
            })
        })
        .collect()
}

pub fn to_f64_column(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<f64>> {
    to_column(obj, what)
}

pub fn to_i64_column(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<i64>> {
    to_column(obj, what)
}

/// A map of JSON values (attributes, parameters) as a Python dict.
pub fn json_map_to_py<'py>(
    py: Python<'py>,
    map: &std::collections::BTreeMap<String, serde_json::Value>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in map {
        d.set_item(k, json_to_py(py, v)?)?;
    }
    Ok(d)
}
