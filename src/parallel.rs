//! Running independent jobs on every core, with results in input order.
//!
//! Workers take the next job from a shared counter one at a time, so one slow job (an
//! RSA-4096 key) never holds back a fixed share of the queue; callers put their slowest jobs
//! first. Results are returned in input order whatever order they finished in, so the output
//! never depends on thread timing. Completions are reported on the calling thread, in the
//! order they happen, through a channel: that is what progress display needs.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// How many worker threads [`map`] uses: one per core the process may run on.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// Applies `f` to every item on [`threads`] workers and returns the results in input order.
/// `on_done(index, &result)` is called on the calling thread as each job completes.
pub fn map<T, R, F>(items: &[T], f: F, on_done: impl FnMut(usize, &R)) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    map_with(threads(), items, f, on_done)
}

/// [`map`] with an explicit number of workers (at least one).
pub fn map_with<T, R, F>(
    workers: usize,
    items: &[T],
    f: F,
    mut on_done: impl FnMut(usize, &R),
) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let len = items.len();
    let workers = workers.clamp(1, len.max(1));
    if workers == 1 {
        return items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let r = f(item);
                on_done(i, &r);
                r
            })
            .collect();
    }
    let next = AtomicUsize::new(0);
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(len).collect();
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, f) = (&next, &f);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= len || tx.send((i, f(&items[i]))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (i, r) in rx {
            on_done(i, &r);
            slots[i] = Some(r);
        }
    });
    slots
        .into_iter()
        .map(|r| r.expect("every index below len is taken by exactly one worker, which sends it"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_input_order_and_every_completion_is_reported_once() {
        let items: Vec<u64> = (0..200).collect();
        for workers in [1, 2, 7] {
            let mut seen = Vec::new();
            let out = map_with(
                workers,
                &items,
                |x| {
                    // Uneven work, so completions arrive out of order.
                    std::thread::sleep(std::time::Duration::from_micros((x % 5) * 50));
                    x * 2
                },
                |i, r| {
                    assert_eq!(*r, items[i] * 2);
                    seen.push(i);
                },
            );
            assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
            seen.sort_unstable();
            assert_eq!(seen, (0..200).collect::<Vec<_>>());
        }
        assert!(map(&[] as &[u8], |x| *x, |_, _| {}).is_empty());
    }
}
