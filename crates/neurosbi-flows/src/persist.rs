//! One-file persistence: a safetensors file whose header metadata carries a format tag, a
//! format version and the model description (architecture, z-score statistics) as JSON.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::FlowError;
use crate::nn::Params;

/// Version of the on-disk layout; bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_TAG: &str = "neurosbi-flows";

pub(crate) fn save(
    path: &Path,
    kind: &str,
    model_json: String,
    params: &Params,
) -> Result<(), FlowError> {
    let mut bufs = Vec::with_capacity(params.vars.len());
    for (name, v) in &params.vars {
        let data: Vec<f32> = v.as_tensor().flatten_all()?.to_vec1()?;
        let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
        bufs.push((name.clone(), v.dims().to_vec(), bytes));
    }
    let views = bufs
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| FlowError::Invalid {
                    what: "parameter",
                    why: format!("{n}: {e}"),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let meta = HashMap::from([
        ("format".to_string(), FORMAT_TAG.to_string()),
        ("version".to_string(), FORMAT_VERSION.to_string()),
        ("kind".to_string(), kind.to_string()),
        ("model".to_string(), model_json),
    ]);
    safetensors::serialize_to_file(views, Some(meta), path).map_err(|e| FlowError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// The model JSON and the raw tensors of a file written by [`save`] for `kind`.
pub(crate) struct Loaded {
    pub(crate) model_json: String,
    pub(crate) tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

pub(crate) fn load(path: &Path, kind: &str) -> Result<Loaded, FlowError> {
    let p = path.display().to_string();
    let err = |why: String| FlowError::Load {
        path: p.clone(),
        why,
    };
    let buf = std::fs::read(path).map_err(|e| FlowError::Io {
        path: p.clone(),
        source: e,
    })?;
    let st =
        SafeTensors::deserialize(&buf).map_err(|e| err(format!("not a safetensors file ({e})")))?;
    let (_, header) = SafeTensors::read_metadata(&buf)
        .map_err(|e| err(format!("not a safetensors file ({e})")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(FORMAT_TAG) {
        return Err(err("not a neurosbi-flows file (format tag missing)".into()));
    }
    let version = meta.get("version").cloned().unwrap_or_default();
    if version != FORMAT_VERSION.to_string() {
        return Err(err(format!(
            "format version {version:?}, this build reads version {FORMAT_VERSION}"
        )));
    }
    let found = meta.get("kind").cloned().unwrap_or_default();
    if found != kind {
        return Err(err(format!("file holds a {found:?}, expected a {kind:?}")));
    }
    let model_json = meta
        .get("model")
        .cloned()
        .ok_or_else(|| err("model description missing".into()))?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(err(format!(
                "tensor {name} has dtype {:?}, expected F32",
                view.dtype()
            )));
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.insert(name, (view.shape().to_vec(), data));
    }
    Ok(Loaded {
        model_json,
        tensors,
    })
}

/// Copies stored values into freshly built parameters, checking names and shapes.
pub(crate) fn restore_params(
    path: &Path,
    params: &Params,
    loaded: &Loaded,
) -> Result<(), FlowError> {
    let err = |why: String| FlowError::Load {
        path: path.display().to_string(),
        why,
    };
    if loaded.tensors.len() != params.vars.len() {
        return Err(err(format!(
            "{} tensors stored, the architecture has {}",
            loaded.tensors.len(),
            params.vars.len()
        )));
    }
    for (name, var) in &params.vars {
        let (shape, data) = loaded
            .tensors
            .get(name)
            .ok_or_else(|| err(format!("tensor {name} missing")))?;
        if shape.as_slice() != var.dims() {
            return Err(err(format!(
                "tensor {name} has shape {shape:?}, expected {:?}",
                var.dims()
            )));
        }
        if let Some(bad) = data.iter().find(|v| !v.is_finite()) {
            return Err(err(format!("tensor {name} holds a non-finite value {bad}")));
        }
        var.set(&Tensor::from_vec(
            data.clone(),
            shape.as_slice(),
            &params.device,
        )?)?;
    }
    Ok(())
}
