//! A decoded column handed to Python without copying it: the Vec the store
//! decoded into becomes the memory behind a `memoryview` (format `q` or
//! `d`), which `numpy.asarray` wraps without a copy either.

use std::ffi::{CStr, c_int, c_void};
use std::ptr::NonNull;

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyMemoryView;

#[derive(Clone, Copy)]
enum Kind {
    I64,
    F64,
}

impl Kind {
    fn format(self) -> &'static CStr {
        match self {
            Kind::I64 => c"q",
            Kind::F64 => c"d",
        }
    }
}

/// The exporter behind a history column's `memoryview`.
#[pyclass(frozen, module = "labbook._native")]
pub struct Column {
    /// The start of a `Box<[i64]>` or `Box<[f64]>` (by `kind`) leaked in
    /// `new` and reclaimed in `drop`. No Rust reference to its elements
    /// exists after `new`: Python's buffer consumers are its only users.
    data: NonNull<u8>,
    kind: Kind,
    /// `[items]` and `[8]`: what `shape` and `strides` of every view point
    /// at, so they live as long as the view's reference to this object.
    shape: [ffi::Py_ssize_t; 1],
    strides: [ffi::Py_ssize_t; 1],
}

// SAFETY: the column owns its allocation outright (leaked from a Box in
// `new`, freed only in `drop`), and Rust never reads or writes the elements
// after `new`; what Python does through a buffer it does under the GIL (the
// module is built for the GIL-holding abi3), as with a `bytearray`.
unsafe impl Send for Column {}
// SAFETY: as for `Send`: no method reads the elements.
unsafe impl Sync for Column {}

impl Column {
    fn new<T>(values: Vec<T>, kind: Kind) -> Column {
        let items = values.len();
        let boxed: Box<[T]> = values.into_boxed_slice();
        let data = NonNull::from(Box::leak(boxed)).cast::<u8>();
        Column {
            data,
            kind,
            shape: [items as ffi::Py_ssize_t],
            strides: [8],
        }
    }

    fn items(&self) -> usize {
        self.shape[0] as usize
    }
}

impl Drop for Column {
    fn drop(&mut self) {
        let items = self.items();
        // SAFETY: `data` and `items` are exactly what `new` leaked from a
        // `Box<[T]>` of this kind's `T`, and drop runs once, after the last
        // view released its reference (each view holds one on this object).
        unsafe {
            match self.kind {
                Kind::I64 => drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    self.data.as_ptr().cast::<i64>(),
                    items,
                ))),
                Kind::F64 => drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    self.data.as_ptr().cast::<f64>(),
                    items,
                ))),
            }
        }
    }
}

#[pymethods]
impl Column {
    /// # Safety
    /// Python calls this with a valid `Py_buffer` to fill.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("no buffer to fill"));
        }
        let column = slf.get();
        let format = column.kind.format().as_ptr().cast_mut();
        let buf = column.data.as_ptr().cast::<c_void>();
        let len = (column.items() * 8) as ffi::Py_ssize_t;
        let shape = column.shape.as_ptr().cast_mut();
        let strides = column.strides.as_ptr().cast_mut();
        // SAFETY: `view` is non-null and Python's to fill. `buf`, `shape`,
        // `strides` and `format` live as long as `slf` (the first three are
        // owned by the column, the format is static), and the view holds a
        // reference to `slf` in `obj` until it is released. The buffer is
        // writable: the column is its sole owner and no Rust code reads it.
        unsafe {
            (*view).obj = slf.into_any().into_ptr();
            (*view).buf = buf;
            (*view).len = len;
            (*view).readonly = 0;
            (*view).itemsize = 8;
            (*view).format = if flags & ffi::PyBUF_FORMAT == ffi::PyBUF_FORMAT {
                format
            } else {
                std::ptr::null_mut()
            };
            (*view).ndim = 1;
            (*view).shape = if flags & ffi::PyBUF_ND == ffi::PyBUF_ND {
                shape
            } else {
                std::ptr::null_mut()
            };
            (*view).strides = if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES {
                strides
            } else {
                std::ptr::null_mut()
            };
            (*view).suboffsets = std::ptr::null_mut();
            (*view).internal = std::ptr::null_mut();
        }
        Ok(())
    }
}

/// A `memoryview` of format `q` over `values`, which it now owns.
pub fn i64_view(py: Python<'_>, values: Vec<i64>) -> PyResult<Bound<'_, PyMemoryView>> {
    view(py, Column::new(values, Kind::I64))
}

/// A `memoryview` of format `d` over `values`, which it now owns.
pub fn f64_view(py: Python<'_>, values: Vec<f64>) -> PyResult<Bound<'_, PyMemoryView>> {
    view(py, Column::new(values, Kind::F64))
}

fn view(py: Python<'_>, column: Column) -> PyResult<Bound<'_, PyMemoryView>> {
    let column = Bound::new(py, column)?;
    PyMemoryView::from(column.as_any())
}
