//! Counters that every worker thread bumps on every request. One shared
//! atomic would make the threads take turns owning its cache line (and
//! the lines of whatever sits next to it): each thread counts in its own
//! stripe instead, and a read sums the stripes.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Stripes per counter; threads past this many share stripes.
const STRIPES: usize = 16;

/// This thread's stripe.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: Cell<Option<usize>> = const { Cell::new(None) };
    }
    MINE.with(|mine| {
        mine.get().unwrap_or_else(|| {
            let i = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
            mine.set(Some(i));
            i
        })
    })
}

/// `N` counters per stripe, on lines of their own (128 bytes: the
/// adjacent-line prefetcher pairs 64-byte lines).
#[repr(align(128))]
struct Stripe<const N: usize>([AtomicU64; N]);

/// `N` related counters, striped by thread.
pub struct Striped<const N: usize>(Box<[Stripe<N>]>);

impl<const N: usize> Default for Striped<N> {
    fn default() -> Self {
        Striped(
            (0..STRIPES)
                .map(|_| Stripe(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
        )
    }
}

/// `N` counters bumped by index: [`Striped`] where every worker thread
/// bumps them, [`Plain`] where few requests do (a job's).
pub trait Counters: Default {
    /// Adds `n` to counter `i` (ignored past `N`).
    fn add(&self, i: usize, n: u64);
    /// Counter `i`.
    fn get(&self, i: usize) -> u64;
}

impl<const N: usize> Counters for Striped<N> {
    fn add(&self, i: usize, n: u64) {
        if let Some(counter) = self.0[stripe()].0.get(i) {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Summed over the stripes.
    fn get(&self, i: usize) -> u64 {
        self.0
            .iter()
            .filter_map(|s| s.0.get(i))
            .map(|c| c.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// `N` plain atomics: 8 bytes each where a stripe set takes 2 KiB.
#[derive(Debug)]
pub struct Plain<const N: usize>([AtomicU64; N]);

impl<const N: usize> Default for Plain<N> {
    fn default() -> Self {
        Plain(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl<const N: usize> Counters for Plain<N> {
    fn add(&self, i: usize, n: u64) {
        if let Some(counter) = self.0.get(i) {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn get(&self, i: usize) -> u64 {
        self.0.get(i).map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

impl<const N: usize> std::fmt::Debug for Striped<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries((0..N).map(|i| self.get(i))).finish()
    }
}

/// One striped counter, used like an `AtomicU64` that only counts up.
#[derive(Debug, Default)]
pub struct HotCounter(Striped<1>);

impl HotCounter {
    pub fn fetch_add(&self, n: u64, _: Ordering) {
        self.0.add(0, n);
    }

    pub fn load(&self, _: Ordering) -> u64 {
        self.0.get(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn counts_from_many_threads_add_up<C: Counters + Send + Sync + 'static>() {
        let counters = Arc::new(C::default());
        let threads: Vec<_> = (0..STRIPES + 4)
            .map(|t| {
                let counters = counters.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        counters.add(t % 3, 1);
                    }
                    counters.add(7, 1);
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let expected = |i: usize| (0..STRIPES + 4).filter(|t| t % 3 == i).count() as u64 * 1000;
        assert_eq!([0, 1, 2].map(|i| counters.get(i)), [0, 1, 2].map(expected));
        assert_eq!(counters.get(7), 0);
    }

    #[test]
    fn striped_counts_from_many_threads_add_up() {
        counts_from_many_threads_add_up::<Striped<3>>();
    }

    #[test]
    fn plain_counts_from_many_threads_add_up() {
        counts_from_many_threads_add_up::<Plain<3>>();
    }
}
