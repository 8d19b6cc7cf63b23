//! A circuit's spike sources in the batch runner, in Brian's order within a step: after
//! the state update, every source's threshold (on the new state, where not refractory);
//! then the synaptic pathways, each on the spikes of its source `delay` steps ago; then
//! every source's reset. Refractoriness is decided at the step's start, as for a model's
//! own threshold (see [`crate::run`]).

use crate::kernel::{Kernel, RefractoryKind, timestep};
use crate::vm::{LANES, Lanes};

/// Brian's `lastspike` before the first spike (seconds).
pub(crate) const NEVER: f64 = -1e4;

/// Brian's `not_refractory` of one spike source at a step's start, on `w` lanes: after a
/// duration (`value`: the duration in seconds where it is evaluated at every step), or
/// `not_refractory or not condition` (`value`: the condition, 1 = refractory).
#[inline(always)]
#[allow(clippy::too_many_arguments)] // one source's state, passed apart to avoid copies
pub(crate) fn not_refractory_now(
    kind: RefractoryKind,
    step: usize,
    dt: f64,
    last: &[i64; LANES],
    ref_steps: &mut [i64; LANES],
    value: &Lanes,
    nr: &mut Lanes,
    w: usize,
) {
    match kind {
        RefractoryKind::None => {}
        RefractoryKind::Duration | RefractoryKind::DurationEachStep => {
            if kind == RefractoryKind::DurationEachStep {
                for l in 0..w {
                    ref_steps[l] = timestep(value[l], dt) as i64;
                }
            }
            let step = step as i64;
            for l in 0..w {
                nr[l] = f64::from(u8::from(step - last[l] >= ref_steps[l]));
            }
        }
        RefractoryKind::Condition => {
            for l in 0..w {
                if value[l] == 0.0 {
                    nr[l] = 1.0;
                }
            }
        }
    }
}

/// Per-block state of a circuit's spike sources.
pub(crate) struct Events {
    kinds: Vec<RefractoryKind>,
    /// Refractory steps after a spike, per source (durations).
    ref_steps: Vec<[i64; LANES]>,
    /// Step of the last spike, per source.
    last: Vec<[i64; LANES]>,
    not_ref: Vec<Lanes>,
    mask: Vec<Lanes>,
    /// Each source's spike masks of the last `max delay + 1` steps, for delayed pathways.
    history: Vec<Vec<Lanes>>,
    /// Whether each source spiked on some lane this step.
    fired: Vec<bool>,
    /// Spike times per source and lane.
    pub(crate) spikes: Vec<Vec<Vec<f64>>>,
}

impl Events {
    /// State for a block whose initial values are computed (`frame` after `init`).
    #[inline(always)]
    pub(crate) fn new<K: Kernel>(k: &K, frame: &mut [Lanes], dt: f64, valid: usize) -> Self {
        let n = k.events().len();
        let layout = k.layout();
        let kinds: Vec<RefractoryKind> = k.events().iter().map(|e| e.refractory).collect();
        let mut ref_steps = vec![[0i64; LANES]; n];
        let mut tmp: Lanes = [0.0; LANES];
        for s in 0..n {
            if kinds[s] == RefractoryKind::Duration {
                k.event_refractory(s, frame, &mut tmp, LANES);
                for l in 0..LANES {
                    ref_steps[s][l] = timestep(tmp[l], dt) as i64;
                }
            }
            if layout.lastspike {
                frame[layout.lastspike_of(s + 1)] = [NEVER; LANES];
            }
        }
        let mut depth = vec![0usize; n];
        for &(s, d) in k.pathways() {
            depth[s] = depth[s].max(d);
        }
        Events {
            kinds,
            ref_steps,
            last: vec![[i64::MIN / 2; LANES]; n],
            not_ref: vec![[1.0; LANES]; n],
            mask: vec![[0.0; LANES]; n],
            history: depth
                .iter()
                .map(|&d| {
                    if d > 0 {
                        vec![[0.0; LANES]; d + 1]
                    } else {
                        Vec::new()
                    }
                })
                .collect(),
            fired: vec![false; n],
            spikes: vec![vec![Vec::new(); valid]; n],
        }
    }

    /// Every source's `not_refractory` at the step's start (Brian's rules, as for a
    /// model's own threshold), written to its register.
    #[inline(always)]
    pub(crate) fn refractoriness<K: Kernel>(
        &mut self,
        k: &K,
        frame: &mut [Lanes],
        step: usize,
        dt: f64,
        w: usize,
    ) {
        let layout = k.layout();
        let mut tmp: Lanes = [0.0; LANES];
        for s in 0..self.kinds.len() {
            let kind = self.kinds[s];
            if matches!(
                kind,
                RefractoryKind::DurationEachStep | RefractoryKind::Condition
            ) {
                k.event_refractory(s, frame, &mut tmp, w);
            }
            let (last, steps) = (&self.last[s], &mut self.ref_steps[s]);
            not_refractory_now(kind, step, dt, last, steps, &tmp, &mut self.not_ref[s], w);
            frame[layout.not_refractory_of(s + 1)] = self.not_ref[s];
        }
    }

    /// Thresholds, pathways and resets after the step's update (`t`: the step's start,
    /// the time Brian gives its spikes).
    #[inline(always)]
    pub(crate) fn fire<K: Kernel>(
        &mut self,
        k: &K,
        frame: &mut [Lanes],
        step: usize,
        t: f64,
        w: usize,
    ) {
        let layout = k.layout();
        let n = self.kinds.len();
        let fired = &mut self.fired;
        fired.fill(false);
        for s in 0..n {
            let mut m: Lanes = [0.0; LANES];
            k.event_threshold(s, frame, &mut m, w);
            for l in 0..w {
                let spike = m[l] != 0.0 && self.not_ref[s][l] != 0.0;
                m[l] = if spike { 1.0 } else { 0.0 };
                if spike {
                    fired[s] = true;
                    if let Some(train) = self.spikes[s].get_mut(l) {
                        train.push(t);
                    }
                    self.last[s][l] = step as i64;
                    if layout.lastspike {
                        frame[layout.lastspike_of(s + 1)][l] = t;
                    }
                    if self.kinds[s] != RefractoryKind::None {
                        // Brian's thresholder clears `not_refractory` at once, so this
                        // step's pathways already see the neuron refractory.
                        self.not_ref[s][l] = 0.0;
                        frame[layout.not_refractory_of(s + 1)][l] = 0.0;
                    }
                }
            }
            self.mask[s] = m;
            let h = &mut self.history[s];
            if !h.is_empty() {
                let len = h.len();
                h[step % len] = m;
            }
        }
        for (p, &(s, d)) in k.pathways().iter().enumerate() {
            let mask = if d == 0 {
                if !fired[s] {
                    continue;
                }
                self.mask[s]
            } else {
                if step < d {
                    continue;
                }
                let h = &self.history[s];
                h[(step - d) % h.len()]
            };
            if mask[..w].iter().any(|&m| m != 0.0) {
                k.pathway(p, frame, &mask);
            }
        }
        for s in 0..n {
            if self.fired[s] {
                k.event_reset(s, frame, &self.mask[s]);
            }
        }
    }
}
