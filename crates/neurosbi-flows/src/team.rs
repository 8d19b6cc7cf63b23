//! A team of threads that spin between jobs, for training loops made of many short
//! parallel sections.
//!
//! Why by hand: a native training step runs two to four parallel sections of 50-200 µs
//! (gradient chunks, the Adam update) separated by short serial work. Between them rayon's
//! idle workers go to sleep, and waking one costs a system call and tens of microseconds per
//! section (measured: about four context switches per section, and 1.4x instead of 2x from
//! a second thread). For the duration of a training run the team's helpers instead spin on
//! an atomic counter, waiting for the next section. The team has as many threads as the
//! current rayon pool (so `--threads` still decides), and items are computed by index and
//! returned in order, so results do not depend on the thread count.

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

/// A job: called once for every index below the section's length.
type Job = dyn Fn(usize) + Sync;

/// The job of the current section, its lifetime erased: [`Team::run`] does not return
/// before every helper has let go of it.
#[derive(Clone, Copy)]
struct JobPtr(*const Job);
// SAFETY: the pointee is `Sync` and outlives every use (see `Team::run`).
unsafe impl Send for JobPtr {}

struct Team {
    /// Bumped for every new section.
    generation: AtomicUsize,
    stop: AtomicBool,
    section: Mutex<Option<(JobPtr, usize)>>,
    next: AtomicUsize,
    pending: AtomicUsize,
    /// Helpers holding the current job pointer.
    busy: AtomicUsize,
    panicked: AtomicBool,
    /// A section is running: a `par_map` called from inside one of its items runs
    /// sequentially instead of re-entering the team.
    in_section: AtomicBool,
}

/// Teams alive in the process: a second one (trainings run side by side) would make the
/// spinning threads compete for the cores, so it is not created.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The team of the training run on this thread, if any.
    static CURRENT: Cell<Option<*const Team>> = const { Cell::new(None) };
}

impl Team {
    /// Claims and runs indices of the current section until none are left.
    fn work(&self, job: JobPtr, n: usize) {
        loop {
            let i = self.next.fetch_add(1, SeqCst);
            if i >= n {
                return;
            }
            // SAFETY: the section's job stays alive until `pending` reaches 0 and no
            // helper is busy (`run` waits for both).
            let f = unsafe { &*job.0 };
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(i))).is_err() {
                self.panicked.store(true, SeqCst);
            }
            self.pending.fetch_sub(1, SeqCst);
        }
    }

    fn helper(&self) {
        let mut seen = 0;
        let mut idle = 0u32;
        loop {
            if self.stop.load(SeqCst) {
                return;
            }
            let g = self.generation.load(SeqCst);
            if g == seen {
                idle = idle.saturating_add(1);
                // Spin while sections come quickly; between bursts (validation, epoch
                // bookkeeping) give the core to others now and then.
                if idle < 50_000 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
                continue;
            }
            seen = g;
            idle = 0;
            self.busy.fetch_add(1, SeqCst);
            let section = *self.section.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((job, n)) = section {
                self.work(job, n);
            }
            self.busy.fetch_sub(1, SeqCst);
        }
    }

    /// Runs `job(i)` for every `i < n` on the team (the caller works too); returns when all
    /// are done.
    fn run<'a>(&self, n: usize, job: &'a (dyn Fn(usize) + Sync + 'a)) {
        // SAFETY (lifetime erasure): this function returns only after `pending` is 0 (every
        // claimed index has finished) and `busy` is 0 after the section was cleared, so no
        // helper uses the pointer after `job`'s borrow ends.
        let ptr = JobPtr(unsafe {
            std::mem::transmute::<&'a (dyn Fn(usize) + Sync + 'a), &'static Job>(job)
        } as *const Job);
        {
            let mut s = self.section.lock().unwrap_or_else(|e| e.into_inner());
            self.next.store(0, SeqCst);
            self.pending.store(n, SeqCst);
            *s = Some((ptr, n));
        }
        self.generation.fetch_add(1, SeqCst);
        self.work(ptr, n);
        while self.pending.load(SeqCst) != 0 {
            std::hint::spin_loop();
        }
        *self.section.lock().unwrap_or_else(|e| e.into_inner()) = None;
        while self.busy.load(SeqCst) != 0 {
            std::hint::spin_loop();
        }
        if self.panicked.swap(false, SeqCst) {
            panic!("a parallel section of native training panicked");
        }
    }
}

/// Runs `f` with a spinning team installed for [`par_map`] calls made on this thread
/// (nested teams are not created). The team has `rayon::current_num_threads()` threads, at
/// most `max_threads`: helpers beyond the sections' useful parallelism would only spin, and on
/// a large node take cores (or hyperthread siblings) from the ones that work.
pub(crate) fn with_team<R>(max_threads: usize, f: impl FnOnce() -> R) -> R {
    let size = rayon::current_num_threads().min(max_threads);
    if size < 2 || CURRENT.with(|c| c.get().is_some()) {
        return f();
    }
    if ACTIVE.fetch_add(1, SeqCst) > 0 {
        ACTIVE.fetch_sub(1, SeqCst);
        return f();
    }
    let team = Team {
        generation: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        section: Mutex::new(None),
        next: AtomicUsize::new(0),
        pending: AtomicUsize::new(0),
        busy: AtomicUsize::new(0),
        panicked: AtomicBool::new(false),
        in_section: AtomicBool::new(false),
    };
    std::thread::scope(|s| {
        for _ in 1..size {
            s.spawn(|| team.helper());
        }
        // Stops the helpers and uninstalls the team however `f` ends (panics included), so
        // the scope can join them.
        struct Guard<'a>(&'a Team);
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                CURRENT.with(|c| c.set(None));
                self.0.stop.store(true, SeqCst);
                ACTIVE.fetch_sub(1, SeqCst);
            }
        }
        let _guard = Guard(&team);
        CURRENT.with(|c| c.set(Some(&team as *const Team)));
        f()
    })
}

/// `(0..n).map(f)` in parallel, in index order: on the current thread's team inside
/// [`with_team`], else on the rayon pool.
pub(crate) fn par_map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    match CURRENT.with(|c| c.get()) {
        // SAFETY: `CURRENT` is only set inside `with_team`, on this thread, while the team
        // lives; it is unset before the team is dropped.
        Some(team) if n > 1 && !unsafe { &*team }.in_section.load(SeqCst) => {
            let slots: Vec<Mutex<Option<T>>> = (0..n).map(|_| Mutex::new(None)).collect();
            let job = |i: usize| {
                let v = f(i);
                *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
            };
            // SAFETY: as above.
            let team = unsafe { &*team };
            team.in_section.store(true, SeqCst);
            team.run(n, &job);
            team.in_section.store(false, SeqCst);
            slots
                .into_iter()
                .map(|m| {
                    m.into_inner()
                        .unwrap_or_else(|e| e.into_inner())
                        .expect("every index ran")
                })
                .collect()
        }
        Some(_) => (0..n).map(f).collect(),
        None => {
            use rayon::prelude::*;
            (0..n).into_par_iter().map(&f).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_order_with_and_without_a_team() {
        let want: Vec<u64> = (0..1000u64).map(|i| i * i).collect();
        assert_eq!(par_map(1000, |i| (i as u64) * (i as u64)), want);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| {
            with_team(3, || {
                for n in [0, 1, 2, 7, 1000] {
                    let got = par_map(n, |i| (i as u64) * (i as u64));
                    assert_eq!(got, want[..n]);
                }
                // Nested teams are not created; the inner call uses the outer team.
                with_team(3, || assert_eq!(par_map(5, |i| i), vec![0, 1, 2, 3, 4]));
                // A par_map inside an item runs its items in order, sequentially.
                let nested = par_map(4, |i| par_map(3, move |j| 10 * i + j));
                assert_eq!(
                    nested,
                    vec![
                        vec![0, 1, 2],
                        vec![10, 11, 12],
                        vec![20, 21, 22],
                        vec![30, 31, 32]
                    ]
                );
            })
        });
    }

    #[test]
    fn a_panicking_item_panics_the_caller_and_the_team_stops() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let r = pool.install(|| {
            std::panic::catch_unwind(|| {
                with_team(2, || {
                    par_map(8, |i| {
                        assert!(i != 5, "item 5 fails");
                        i
                    })
                })
            })
        });
        assert!(r.is_err());
        // The thread is usable afterwards, without a team.
        assert_eq!(pool.install(|| par_map(3, |i| i + 1)), vec![1, 2, 3]);
    }
}
