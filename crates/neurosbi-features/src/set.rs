//! The catalogue of named features, [`FeatureSet`] built from names, and the parallel
//! batch computation into a row-major [`FeatureMatrix`].

use std::sync::Arc;

use rayon::prelude::*;

use crate::error::{FeatureError, RecordingError, close_matches};
use crate::feature::{Feature, Input, Outcome, Undefined};
use crate::params::{Params, parse_spec};
use crate::recording::Recording;

/// Builds a feature from its parameters.
pub type Builder = fn(&mut Params) -> Result<Box<dyn Feature>, FeatureError>;

/// One named entry of a [`Catalogue`].
#[derive(Clone)]
pub struct CatalogueEntry {
    /// Name used in specifications.
    pub name: &'static str,
    /// Family: `moments`, `efel`, `spiketrain`, `entropy`, or a user's own.
    pub group: &'static str,
    /// Unit of the value(s).
    pub unit: &'static str,
    /// One-line definition.
    pub summary: &'static str,
    /// Parameters with defaults, as documentation (`name=default`).
    pub params: &'static str,
    /// Constructor.
    pub build: Builder,
}

impl std::fmt::Debug for CatalogueEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogueEntry")
            .field("name", &self.name)
            .field("group", &self.group)
            .finish()
    }
}

/// The set of features that can be requested by name.
#[derive(Debug, Clone)]
pub struct Catalogue {
    entries: Vec<CatalogueEntry>,
}

impl Default for Catalogue {
    fn default() -> Self {
        Self::standard()
    }
}

impl Catalogue {
    /// Every feature this crate provides.
    pub fn standard() -> Self {
        let mut entries = Vec::new();
        entries.extend(crate::moments::entries());
        entries.extend(crate::efel::entries());
        entries.extend(crate::spiketrain::entries());
        entries.extend(crate::entropy::entries());
        entries.extend(crate::pyloric::entries());
        Self { entries }
    }

    /// Adds (or replaces, by name) an entry, e.g. a user's own feature.
    pub fn register(&mut self, entry: CatalogueEntry) {
        self.entries.retain(|e| e.name != entry.name);
        self.entries.push(entry);
    }

    /// All entries, in catalogue order.
    pub fn entries(&self) -> &[CatalogueEntry] {
        &self.entries
    }

    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<&CatalogueEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Builds one feature from a specification such as `mean(window=stim)`.
    pub fn build(&self, spec: &str) -> Result<Box<dyn Feature>, FeatureError> {
        let (name, given) = parse_spec(spec)?;
        let entry = self
            .get(&name)
            .ok_or_else(|| FeatureError::UnknownFeature {
                close_matches: close_matches(&name, self.entries.iter().map(|e| e.name)),
                name: name.clone(),
            })?;
        let mut params = Params::new(&name, given);
        let feature = (entry.build)(&mut params)?;
        params.finish()?;
        Ok(feature)
    }
}

/// An ordered list of features; its outputs, concatenated, form one feature vector.
/// Cloning is cheap (features are shared).
#[derive(Default, Clone)]
pub struct FeatureSet {
    features: Vec<Arc<dyn Feature>>,
    offsets: Vec<usize>,
    n_outputs: usize,
}

impl std::fmt::Debug for FeatureSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.features.iter().map(|x| x.name()))
            .finish()
    }
}

impl FeatureSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a set from specifications using the standard catalogue.
    pub fn from_names<S: AsRef<str>>(specs: &[S]) -> Result<Self, FeatureError> {
        Self::from_names_in(&Catalogue::standard(), specs)
    }

    /// Builds a set from specifications using `catalogue`.
    pub fn from_names_in<S: AsRef<str>>(
        catalogue: &Catalogue,
        specs: &[S],
    ) -> Result<Self, FeatureError> {
        let mut set = Self::new();
        for s in specs {
            set.push(catalogue.build(s.as_ref())?);
        }
        Ok(set)
    }

    /// Appends a feature (a user's own, or one built by hand).
    pub fn push(&mut self, feature: Box<dyn Feature>) {
        self.offsets.push(self.n_outputs);
        self.n_outputs += feature.n_outputs();
        self.features.push(Arc::from(feature));
    }

    /// Number of values per recording.
    pub fn n_outputs(&self) -> usize {
        self.n_outputs
    }

    /// The features, in order.
    pub fn features(&self) -> &[Arc<dyn Feature>] {
        &self.features
    }

    /// Output names, one per value.
    pub fn output_names(&self) -> Vec<String> {
        self.features
            .iter()
            .flat_map(|f| f.output_names())
            .collect()
    }

    /// Column names of a batch row for `variables` x `n_traces` recordings per row, in
    /// the order of [`FeatureSet::compute_batch`]: `variable/trace/feature`.
    pub fn column_names(&self, variables: &[&str], n_traces: usize) -> Vec<String> {
        let names = self.output_names();
        let mut out = Vec::with_capacity(variables.len() * n_traces * names.len());
        for v in variables {
            for t in 0..n_traces {
                for n in &names {
                    out.push(format!("{v}/{t}/{n}"));
                }
            }
        }
        out
    }

    /// Computes the feature vector of one recording into `out` (length
    /// [`FeatureSet::n_outputs`]). Fails when the recording itself is invalid (a
    /// failed simulation); features undefined for valid data are `Err(Undefined)` cells.
    pub fn compute_into(
        &self,
        recording: &Recording<'_>,
        out: &mut [Outcome],
    ) -> Result<(), RecordingError> {
        debug_assert_eq!(out.len(), self.n_outputs);
        recording.validate()?;
        let input = Input::new(*recording);
        for (f, &o) in self.features.iter().zip(&self.offsets) {
            f.compute(&input, &mut out[o..o + f.n_outputs()]);
        }
        // A NaN value (e.g. overflow on extreme samples, or a user feature) is reported
        // as undefined, so NaN in a matrix always has a readable reason behind it.
        for v in out.iter_mut() {
            if matches!(v, Ok(x) if x.is_nan()) {
                *v = Err(Undefined(
                    "value is not a number (overflow or invalid operation)",
                ));
            }
        }
        Ok(())
    }

    /// Computes the feature vector of one recording.
    pub fn compute(&self, recording: &Recording<'_>) -> Result<Vec<Outcome>, RecordingError> {
        let mut out = vec![Err(Undefined("not computed")); self.n_outputs];
        self.compute_into(recording, &mut out)?;
        Ok(out)
    }

    /// Computes features for many recordings in parallel (rayon).
    ///
    /// `recordings` is split into rows of `per_row` consecutive recordings; within a row
    /// they are ordered by output variable, then by input trace (brian2modelfitting's
    /// layout), and a row's columns are, for each of its recordings in that order, the
    /// set's outputs. A recording that fails [`Recording::validate`] marks its whole row
    /// as failed ([`FeatureMatrix::failure`]). Results do not depend on thread count.
    pub fn compute_batch(
        &self,
        recordings: &[Recording<'_>],
        per_row: usize,
    ) -> Result<FeatureMatrix, FeatureError> {
        if per_row == 0 {
            return Err(FeatureError::Layout(
                "recordings per row must be at least 1".into(),
            ));
        }
        if !recordings.len().is_multiple_of(per_row) {
            return Err(FeatureError::Layout(format!(
                "{} recordings do not divide into rows of {per_row}",
                recordings.len()
            )));
        }
        let n_rows = recordings.len() / per_row;
        let n_cols = per_row * self.n_outputs;
        let mut cells = vec![Err(Undefined("not computed")); n_rows * n_cols];
        let mut failures = vec![None; n_rows];
        if n_cols > 0 {
            cells
                .par_chunks_mut(n_cols)
                .zip(failures.par_iter_mut())
                .enumerate()
                .for_each(|(r, (row, fail))| {
                    for k in 0..per_row {
                        let rec = &recordings[r * per_row + k];
                        let out = &mut row[k * self.n_outputs..(k + 1) * self.n_outputs];
                        if let Err(error) = self.compute_into(rec, out) {
                            *fail = Some(RowFailure {
                                recording: k,
                                error,
                            });
                            row.fill(Err(Undefined("recording failed")));
                            break;
                        }
                    }
                });
        } else {
            for (r, fail) in failures.iter_mut().enumerate() {
                for k in 0..per_row {
                    if let Err(error) = recordings[r * per_row + k].validate() {
                        *fail = Some(RowFailure {
                            recording: k,
                            error,
                        });
                        break;
                    }
                }
            }
        }
        Ok(FeatureMatrix {
            n_rows,
            n_cols,
            cells,
            failures,
        })
    }
}

/// Which recording of a row failed, and why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowFailure {
    /// Index of the recording within the row.
    pub recording: usize,
    /// What was wrong with it.
    pub error: RecordingError,
}

/// Row-major matrix of feature outcomes (rows = simulations).
#[derive(Debug, Clone)]
pub struct FeatureMatrix {
    n_rows: usize,
    n_cols: usize,
    cells: Vec<Outcome>,
    failures: Vec<Option<RowFailure>>,
}

impl FeatureMatrix {
    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of columns.
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Outcome at `(row, col)`.
    pub fn get(&self, row: usize, col: usize) -> Outcome {
        self.cells[row * self.n_cols + col]
    }

    /// Outcomes of one row.
    pub fn row(&self, row: usize) -> &[Outcome] {
        &self.cells[row * self.n_cols..(row + 1) * self.n_cols]
    }

    /// Why a row failed (its recording was invalid), if it did.
    pub fn failure(&self, row: usize) -> Option<RowFailure> {
        self.failures[row]
    }

    /// Number of failed rows.
    pub fn n_failed(&self) -> usize {
        self.failures.iter().filter(|f| f.is_some()).count()
    }

    /// Values, row-major, with NaN for undefined cells and failed rows.
    pub fn values(&self) -> Vec<f64> {
        self.cells.iter().map(|c| c.unwrap_or(f64::NAN)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_suggest_close_ones() {
        match FeatureSet::from_names(&["spike_cout"]) {
            Err(FeatureError::UnknownFeature { close_matches, .. }) => {
                assert!(
                    close_matches.contains(&"spike_count".to_string()),
                    "{close_matches:?}"
                )
            }
            other => panic!("{other:?}"),
        }
        let e = FeatureSet::from_names(&["perm_entropy(ordr=3)"]).unwrap_err();
        assert!(e.to_string().contains("order"), "{e}");
    }

    #[test]
    fn batch_layout_is_variable_trace_feature() {
        let set = FeatureSet::from_names(&["mean", "max"]).unwrap();
        let a = [1.0, 2.0, 3.0];
        let b = [10.0, 20.0, 30.0];
        let c = [f64::NAN, 1.0, 1.0];
        let recs = [
            Recording::new(&a, 0.1),
            Recording::new(&b, 0.1),
            Recording::new(&b, 0.1),
            Recording::new(&c, 0.1),
        ];
        let m = set.compute_batch(&recs, 2).unwrap();
        assert_eq!((m.n_rows(), m.n_cols()), (2, 4));
        assert_eq!(m.row(0), &[Ok(2.0), Ok(3.0), Ok(20.0), Ok(30.0)]);
        assert_eq!(m.failure(0), None);
        let f = m.failure(1).unwrap();
        assert_eq!(f.recording, 1);
        assert!(matches!(
            f.error,
            RecordingError::NonFinite { index: 0, .. }
        ));
        assert!(m.values()[4..].iter().all(|v| v.is_nan()));
        assert_eq!(set.column_names(&["v"], 2)[2], "v/1/mean");
        assert!(set.compute_batch(&recs, 3).is_err());
    }

    #[test]
    fn catalogue_is_listed_and_every_entry_builds_with_defaults() {
        let cat = Catalogue::standard();
        assert!(cat.entries().len() > 40);
        for e in cat.entries() {
            let f = cat
                .build(e.name)
                .unwrap_or_else(|err| panic!("{}: {err}", e.name));
            assert!(f.n_outputs() >= 1);
        }
    }

    #[test]
    fn public_types_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<FeatureSet>();
        check::<FeatureMatrix>();
        check::<Catalogue>();
        let set = FeatureSet::from_names(&["mean"]).unwrap();
        assert_eq!(set.clone().output_names(), set.output_names());
    }
}
