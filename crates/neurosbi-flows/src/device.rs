//! Device selection and moving models between devices.

use candle_core::Device;

use crate::FlowError;
use crate::nn::Params;

/// The device named `"cpu"`, `"cuda"` (GPU 0) or `"cuda:N"`.
///
/// CUDA devices need the crate feature `cuda`; without it (and for unknown names or a GPU
/// that cannot be opened) the error says so.
///
/// ```
/// let cpu = neurosbi_flows::device_from_name("cpu")?;
/// assert!(cpu.is_cpu());
/// assert!(neurosbi_flows::device_from_name("tpu").is_err());
/// # Ok::<(), neurosbi_flows::FlowError>(())
/// ```
pub fn device_from_name(name: &str) -> Result<Device, FlowError> {
    let ordinal = match name.trim() {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| FlowError::Invalid {
                what: "device",
                why: format!("unknown device {other:?}; use \"cpu\", \"cuda\" or \"cuda:N\""),
            })?,
    };
    open_cuda(name, ordinal)
}

#[cfg(feature = "cuda")]
fn open_cuda(name: &str, ordinal: usize) -> Result<Device, FlowError> {
    Device::new_cuda(ordinal).map_err(|e| FlowError::Invalid {
        what: "device",
        why: format!("cannot open {name:?}: {e}"),
    })
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(name: &str, _ordinal: usize) -> Result<Device, FlowError> {
    Err(FlowError::Invalid {
        what: "device",
        why: format!(
            "{name:?} needs a GPU build: neurosbi-flows was compiled without its `cuda` feature"
        ),
    })
}

/// Copies the values of `from` into `to`, a freshly built twin of the same architecture
/// (possibly on another device).
pub(crate) fn copy_params(from: &Params, to: &Params) -> Result<(), FlowError> {
    if from.vars.len() != to.vars.len() {
        return Err(FlowError::Invalid {
            what: "parameters",
            why: format!("{} tensors to copy into {}", from.vars.len(), to.vars.len()),
        });
    }
    for ((name, src), (dst_name, dst)) in from.vars.iter().zip(&to.vars) {
        if name != dst_name || src.dims() != dst.dims() {
            return Err(FlowError::Invalid {
                what: "parameters",
                why: format!(
                    "tensor {name} {:?} does not match {dst_name} {:?}",
                    src.dims(),
                    dst.dims()
                ),
            });
        }
        dst.set(&src.as_tensor().to_device(&to.device)?)?;
    }
    Ok(())
}

/// The device `cfg` asks to train on when it differs from `current`; an error for a device
/// that cannot be opened, or for resuming across devices (the optimiser state stays with the
/// model's own device).
pub(crate) fn training_device(
    cfg: &crate::TrainConfig,
    current: &Device,
) -> Result<Option<Device>, FlowError> {
    let Some(name) = &cfg.device else {
        return Ok(None);
    };
    let dev = device_from_name(name)?;
    if dev.same_device(current) {
        return Ok(None);
    }
    if cfg.resume {
        return Err(FlowError::Invalid {
            what: "resume",
            why: format!(
                "resuming keeps the optimiser state on the model's device; train on {name:?} without resume, or move the model there first (to_device)"
            ),
        });
    }
    Ok(Some(dev))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert!(device_from_name("cpu").unwrap().is_cpu());
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", ""] {
            let e = device_from_name(bad).unwrap_err().to_string();
            assert!(e.contains("unknown device"), "{bad}: {e}");
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_a_clear_error() {
        for name in ["cuda", "cuda:1"] {
            let e = device_from_name(name).unwrap_err().to_string();
            assert!(e.contains("without its `cuda` feature"), "{e}");
        }
    }
}
