//! Save / load round trips and clear errors on bad files.

mod common;

use common::{bimodal, trained_bimodal};
use neurosbi_flows::{
    ClassifierConfig, ConditionalEstimator, EstimatorKind, FlowError, NoObserver, RatioClassifier,
    TrainConfig, losses,
};

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("neurosbi-flows-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn round_trip_gives_identical_log_probs() {
    for (i, kind) in [EstimatorKind::Maf, EstimatorKind::Nsf, EstimatorKind::Mdn]
        .into_iter()
        .enumerate()
    {
        for d in [1, 2] {
            let q = trained_bimodal(kind, d, 1);
            let path = tmp(&format!("est{i}{d}.safetensors"));
            q.save(&path).unwrap();
            let r = ConditionalEstimator::load(&path).unwrap();
            let (theta, x) = bimodal(300, d, 4);
            assert_eq!(
                q.log_prob(&theta, &x).unwrap(),
                r.log_prob(&theta, &x).unwrap(),
                "{kind:?} d={d}"
            );
            assert_eq!(
                q.sample(20, &[0.2], 1).unwrap(),
                r.sample(20, &[0.2], 1).unwrap()
            );
            assert_eq!(r.config(), q.config());
            assert_eq!((r.dim_inputs(), r.dim_context()), (d, 1));
        }
    }
}

fn load_error(path: &std::path::Path) -> String {
    match ConditionalEstimator::load(path) {
        Err(e @ FlowError::Load { .. }) => e.to_string(),
        Err(e) => panic!("wrong error kind: {e}"),
        Ok(_) => panic!("loading {} succeeded", path.display()),
    }
}

#[test]
fn corrupt_and_foreign_files_fail_clearly() {
    let q = trained_bimodal(EstimatorKind::Maf, 2, 1);
    let path = tmp("good.safetensors");
    q.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();

    let p = tmp("truncated.safetensors");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    assert!(load_error(&p).contains("not a safetensors file"));

    let p = tmp("garbage.safetensors");
    std::fs::write(&p, b"hello, this is not a model").unwrap();
    assert!(load_error(&p).contains("not a safetensors file"));

    // A valid safetensors file from elsewhere (no format tag).
    let p = tmp("foreign.safetensors");
    let data = vec![0u8; 16];
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![4], &data).unwrap();
    safetensors::serialize_to_file([("w", view)], None, &p).unwrap();
    assert!(load_error(&p).contains("not a neurosbi-flows file"));

    // Same length header edits: a future version, a classifier file, a changed shape.
    let edit = |from: &str, to: &str, name: &str| {
        assert_eq!(from.len(), to.len());
        let pos = bytes
            .windows(from.len())
            .position(|w| w == from.as_bytes())
            .unwrap_or_else(|| panic!("{from} not in header"));
        let mut b = bytes.clone();
        b[pos..pos + from.len()].copy_from_slice(to.as_bytes());
        let p = tmp(name);
        std::fs::write(&p, &b).unwrap();
        p
    };
    let e = load_error(&edit(
        "\"version\":\"1\"",
        "\"version\":\"7\"",
        "v7.safetensors",
    ));
    assert!(e.contains("format version") && e.contains("7"), "{e}");
    let e = load_error(&edit(
        "\"conditional-estimator\"",
        "\"ratio-classifier-xxxx\"",
        "kind.safetensors",
    ));
    assert!(e.contains("expected a"), "{e}");
    let e = load_error(&edit(
        "\"num_transforms\\\":5",
        "\"num_transforms\\\":4",
        "arch.safetensors",
    ));
    assert!(e.contains("5 permutations for 4 transforms"), "{e}");
    let e = load_error(&edit(
        "\"hidden_features\\\":50",
        "\"hidden_features\\\":51",
        "shape.safetensors",
    ));
    assert!(e.contains("shape"), "{e}");

    let missing = tmp("does-not-exist.safetensors");
    assert!(matches!(
        ConditionalEstimator::load(&missing),
        Err(FlowError::Io { .. })
    ));
    assert!(matches!(
        RatioClassifier::load(&path),
        Err(FlowError::Load { .. })
    ));
}

#[test]
fn classifier_round_trip() {
    let (theta, x) = bimodal(600, 2, 8);
    for cfg in [ClassifierConfig::mlp(), ClassifierConfig::residual()] {
        let mut c = RatioClassifier::new(&cfg, &theta, &x, 2, 1, 0).unwrap();
        let tc = TrainConfig {
            max_epochs: Some(2),
            ..TrainConfig::default()
        };
        c.train_with_loss(&theta, &x, &tc, &mut NoObserver, &|c, t, x| {
            losses::nre_a_loss(c, t, x)
        })
        .unwrap();
        let path = tmp("clf.safetensors");
        c.save(&path).unwrap();
        let r = RatioClassifier::load(&path).unwrap();
        assert_eq!(c.logits(&theta, &x).unwrap(), r.logits(&theta, &x).unwrap());
        assert!(matches!(
            ConditionalEstimator::load(&path),
            Err(FlowError::Load { .. })
        ));
    }
}
