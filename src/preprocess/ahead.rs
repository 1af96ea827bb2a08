//! Decoding ahead: the next batches of images are decoded and preprocessed (on rayon's threads)
//! while the backbone runs the current one. Extraction and prediction both stream through it.

use std::ops::ControlFlow;

use rayon::prelude::*;

/// Batches decoded ahead of the one the backbone is running: enough to hide decoding.
pub const PREFETCH_BATCHES: usize = 2;

/// One batch ready for the backbone: the CHW tensors of its usable units' views back to back,
/// and each unit (an image, or the rows of one source image) in batch order with the number of
/// views it put in `tensor`, or why it cannot be used.
pub struct Prepared<U> {
    /// Each unit with its views in `tensor`, or the reason it is unusable.
    pub units: Vec<(U, Result<usize, String>)>,
    /// CHW tensors of the usable units' views, back to back.
    pub tensor: Vec<f32>,
    /// Views in `tensor` (its length over one view's).
    pub views: usize,
}

impl<U: Send> Prepared<U> {
    /// Prepares `inputs` on rayon's threads: `tensors` turns one into its unit and that unit's
    /// views (CHW tensors of `chw` values each, back to back), or why it cannot be used.
    pub fn build<T: Send>(
        inputs: Vec<T>,
        chw: usize,
        tensors: impl Fn(T) -> (U, Result<Vec<f32>, String>) + Sync + Send,
    ) -> Prepared<U> {
        let decoded: Vec<(U, Result<Vec<f32>, String>)> =
            inputs.into_par_iter().map(tensors).collect();
        let mut prepared = Prepared {
            units: Vec::with_capacity(decoded.len()),
            tensor: Vec::with_capacity(decoded.len() * chw),
            views: 0,
        };
        for (unit, tensor) in decoded {
            let views = tensor.map(|t| {
                let views = t.len() / chw.max(1);
                prepared.tensor.extend(t);
                prepared.views += views;
                views
            });
            prepared.units.push((unit, views));
        }
        prepared
    }
}

/// Streams `batches` through `prepare` on a scoped thread, at most [`PREFETCH_BATCHES`] ahead
/// of `consume`, which takes each prepared batch in order on the calling thread. Ends when the
/// batches do, or when `consume` breaks or fails; the preparing thread then stops before its
/// next batch.
pub fn decode_ahead<B, P, E>(
    batches: impl Iterator<Item = B> + Send,
    prepare: impl Fn(B) -> P + Send,
    mut consume: impl FnMut(P) -> Result<ControlFlow<()>, E>,
) -> Result<(), E>
where
    P: Send,
{
    let (sender, receiver) = std::sync::mpsc::sync_channel::<P>(PREFETCH_BATCHES);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for batch in batches {
                if sender.send(prepare(batch)).is_err() {
                    break;
                }
            }
        });
        // Owned here: returning drops it, which stops the preparing thread at its next send.
        let receiver = receiver;
        for prepared in receiver.iter() {
            if consume(prepared)?.is_break() {
                break;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_keep_their_order_and_views_their_place() {
        let prepared = Prepared::build(vec![2usize, 0, 1], 3, |n| match n {
            0 => ("none", Err("unusable".to_string())),
            n => ("some", Ok(vec![n as f32; 3 * n])),
        });
        let views: Vec<_> = prepared.units.iter().map(|(_, v)| v.clone()).collect();
        assert_eq!(views, [Ok(2), Err("unusable".to_string()), Ok(1)]);
        assert_eq!(prepared.views, 3);
        assert_eq!(prepared.tensor, [2., 2., 2., 2., 2., 2., 1., 1., 1.]);
    }

    #[test]
    fn consume_sees_every_batch_in_order_and_break_stops_it() {
        let mut seen = Vec::new();
        let done: Result<(), ()> = decode_ahead(
            0..100,
            |b| b * 10,
            |p| {
                seen.push(p);
                Ok(match p {
                    50 => ControlFlow::Break(()),
                    _ => ControlFlow::Continue(()),
                })
            },
        );
        assert_eq!(done, Ok(()));
        assert_eq!(seen, (0..=5).map(|b| b * 10).collect::<Vec<_>>());
        let failed = decode_ahead(
            0..100,
            |b| b,
            |b| {
                if b == 3 {
                    Err(b)
                } else {
                    Ok(ControlFlow::Continue(()))
                }
            },
        );
        assert_eq!(failed, Err(3));
    }
}
