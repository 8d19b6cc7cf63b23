//! Where a compiled model's step spends its time: each instruction of the step program
//! timed alone, on the widest vectors the CPU has (as the batch runner runs them).
//!
//! Each figure is the fastest of many short trials, which keeps it stable on a machine
//! that is doing other work. Instructions overlap when the whole program runs (a division
//! can proceed beside the next instruction's multiply-adds), so the sum of the parts is
//! an upper bound of the whole.
//! `cargo run --release -p neurosbi-sim --example sim_profile -- MODEL.toml` prints it.

use crate::kernel::CompiledKernel;
use crate::vm::{LANES, Lanes, Program};
use std::time::Instant;

/// Nanoseconds per lane of a model's step, whole and per instruction.
#[derive(Clone, Debug)]
pub struct StepProfile {
    /// Lanes each instruction ran on.
    pub width: usize,
    /// The whole step program.
    pub whole_ns: f64,
    /// Each instruction (as text) with its time alone.
    pub instructions: Vec<(String, f64)>,
}

/// Profiles the step program of `kernel` on `width` lanes (1, 2, 4, 8 or [`LANES`]).
pub fn step_profile(kernel: &CompiledKernel, width: usize) -> StepProfile {
    let (program, n_regs) = kernel.step_program();
    // Values of a resting neuron's order of magnitude: no lane takes a slow path anyway
    // (the kernels are branch-free), but they stay finite.
    let mut frame: Vec<Lanes> = (0..n_regs)
        .map(|r| std::array::from_fn(|l| -0.065 + 1e-4 * r as f64 + 1e-5 * l as f64))
        .collect();
    let whole_ns = time(program, &mut frame, n_regs, width);
    let instructions = (0..program.len())
        .map(|i| {
            let one = program.single(i);
            let t = time(&one, &mut frame, n_regs, width);
            (program.instruction_text(i), t)
        })
        .collect();
    StepProfile {
        width,
        whole_ns,
        instructions,
    }
}

fn time(p: &Program, frame: &mut [Lanes], n_regs: usize, width: usize) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        let fma = std::arch::is_x86_feature_detected!("fma");
        if fma && std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F and FMA (checked just above).
            return unsafe { time_avx512(p, frame, n_regs, width) };
        }
        if fma && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            return unsafe { time_avx2(p, frame, n_regs, width) };
        }
    }
    time_generic(p, frame, n_regs, width)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn time_avx512(p: &Program, frame: &mut [Lanes], n_regs: usize, width: usize) -> f64 {
    time_generic(p, frame, n_regs, width)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn time_avx2(p: &Program, frame: &mut [Lanes], n_regs: usize, width: usize) -> f64 {
    time_generic(p, frame, n_regs, width)
}

/// Fastest of 200 trials of 100 runs, in ns per lane.
#[inline(always)]
fn time_generic(p: &Program, frame: &mut [Lanes], n_regs: usize, width: usize) -> f64 {
    const RUNS: usize = 100;
    let lanes = width.clamp(1, LANES) as f64;
    // Plain loops, no closures: a closure is a function of its own, compiled without the
    // caller's target features, and would time the kernels without FMA.
    let mut best = f64::INFINITY;
    for _ in 0..200 {
        let t0 = Instant::now();
        for _ in 0..RUNS {
            p.exec_width(frame, n_regs, width);
            std::hint::black_box(&mut *frame);
        }
        best = best.min(t0.elapsed().as_secs_f64() * 1e9 / (RUNS as f64 * lanes));
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_lists_every_instruction_with_a_positive_time() {
        let desc = crate::ModelDescription::new("dv/dt = (exp(-v/mV) - v/mV)*mV/ms : volt");
        let model = crate::Model::new(&desc).unwrap();
        let k = CompiledKernel::new(&model, 1e-5, &[]).unwrap();
        let p = step_profile(&k, 8);
        assert_eq!(p.instructions.len(), k.step_program().0.len());
        assert!(p.instructions.iter().any(|(t, _)| t.contains("Exp")));
        assert!(p.whole_ns > 0.0 && p.instructions.iter().all(|(_, t)| *t > 0.0));
    }
}
