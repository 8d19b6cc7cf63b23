//! Patch-clamp recordings from Python (`neurosbi.read_recording`, `neurosbi.inspect`):
//! neurosbi-io's ABF reader (and NWB in a wheel built with the `nwb` feature), sweeps as
//! numpy arrays in the channel's units, with rate, channels, commands, epochs and tags.

use std::path::PathBuf;

use neurosbi::io::{ChannelSelector, Error as IoError, Recording};
use numpy::PyArray1;
use pyo3::exceptions::{PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Maps a reader error to the Python exception of its kind, keeping the message.
fn io_err(e: IoError) -> PyErr {
    let msg = e.to_string();
    match e {
        IoError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(msg)
        }
        IoError::NoNwbSupport { .. } => crate::Error::new_err(format!(
            "{msg}. The Python wheel is built without NWB support: build it with `maturin \
             build --release --features nwb -m python/Cargo.toml` (HDF5 library installed) and \
             pip install that wheel"
        )),
        IoError::Io { .. } => crate::Error::new_err(msg),
        _ => PyValueError::new_err(msg),
    }
}

/// A recording read from a file: `neurosbi.read_recording(path)`.
#[pyclass(module = "neurosbi._neurosbi", name = "RecordingFile", frozen)]
pub(crate) struct PyRecording {
    inner: Recording,
}

impl PyRecording {
    /// The channel index of `channel` (an index or a name in the file).
    fn index(&self, channel: &Bound<'_, PyAny>) -> PyResult<usize> {
        let sel = match channel.extract::<usize>() {
            Ok(i) => ChannelSelector::Index(i),
            Err(_) => ChannelSelector::Name(channel.extract::<String>().map_err(|_| {
                PyValueError::new_err(format!(
                    "channel: expected an index or a name, got {channel}"
                ))
            })?),
        };
        self.inner.channel_index(&sel).map_err(io_err)
    }
}

#[pymethods]
impl PyRecording {
    /// The file.
    #[getter]
    fn path(&self) -> PathBuf {
        self.inner.path.clone()
    }

    /// Format and version (`ABF 2.6.0.0`).
    #[getter]
    fn format(&self) -> String {
        self.inner.format.clone()
    }

    /// Samples per second.
    #[getter]
    fn sample_rate_hz(&self) -> f64 {
        self.inner.sample_rate_hz
    }

    /// The recorded channels: (name, units) each, in file order.
    #[getter]
    fn channels(&self) -> Vec<(String, String)> {
        let c = &self.inner.channels;
        c.iter()
            .map(|c| (c.name.clone(), c.units.clone()))
            .collect()
    }

    /// The command outputs (DACs): (name, units) each.
    #[getter]
    fn commands(&self) -> Vec<(String, String)> {
        let c = &self.inner.commands;
        c.iter()
            .map(|c| (c.name.clone(), c.units.clone()))
            .collect()
    }

    /// Comments placed during the recording: (time in s, text) each.
    #[getter]
    fn tags(&self) -> Vec<(f64, String)> {
        let t = &self.inner.tags;
        t.iter().map(|t| (t.time_s, t.comment.clone())).collect()
    }

    /// Number of sweeps (a gap-free recording is one).
    #[getter]
    fn sweep_count(&self) -> usize {
        self.inner.sweep_count()
    }

    /// Samples per sweep.
    #[getter]
    fn sweep_lengths(&self) -> PyResult<Vec<usize>> {
        let r = &self.inner;
        (0..r.sweep_count())
            .map(|s| r.sweep_len(s).map_err(io_err))
            .collect()
    }

    /// Index of `channel` (an index or a name); an unknown one lists those that exist.
    fn channel_index(&self, channel: &Bound<'_, PyAny>) -> PyResult<usize> {
        self.index(channel)
    }

    /// One sweep of one channel, in the channel's units.
    fn sweep<'py>(
        &self,
        py: Python<'py>,
        channel: &Bound<'py, PyAny>,
        sweep: usize,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let c = self.index(channel)?;
        let v = self.inner.sweep(c, sweep).map_err(io_err)?;
        Ok(PyArray1::from_vec(py, v))
    }

    /// The waveform command output `dac` gave in `sweep` (from the epoch table), in the
    /// command's units.
    #[pyo3(signature = (sweep, dac=0))]
    fn command<'py>(
        &self,
        py: Python<'py>,
        sweep: usize,
        dac: usize,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let v = self.inner.command_waveform(dac, sweep).map_err(io_err)?;
        Ok(PyArray1::from_vec(py, v))
    }

    /// The epochs of `sweep` on command `dac`: dicts with start and stop sample, level (in
    /// the command's units) and kind (step, ramp, pulse, ...).
    #[pyo3(signature = (sweep, dac=0))]
    fn epochs<'py>(
        &self,
        py: Python<'py>,
        sweep: usize,
        dac: usize,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let e = self.inner.sweep_epochs(dac, sweep).map_err(io_err)?;
        e.iter()
            .map(|e| {
                let d = PyDict::new(py);
                d.set_item("start", e.start)?;
                d.set_item("stop", e.stop)?;
                d.set_item("level", e.level)?;
                d.set_item("kind", e.kind.name())?;
                Ok(d)
            })
            .collect()
    }

    /// What `neurosbi inspect FILE` prints: channels, units, sweeps, epochs, duration.
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// Reads a recording (ABF 1 or 2; NWB with the `nwb` feature), choosing the reader by the
/// file's first bytes.
#[pyfunction]
pub(crate) fn read_recording(py: Python<'_>, path: PathBuf) -> PyResult<PyRecording> {
    let inner = py.detach(|| neurosbi::io::open(&path)).map_err(io_err)?;
    Ok(PyRecording { inner })
}
