//! An exact change of variables for linear models with fewer rows than dimensions.
//!
//! With `X` (n x d, n < d) and `X X^T + eps I = L L^T` (Cholesky), the rows of `L` are
//! coordinates of the rows of `X` in an orthonormal basis `Q = X^T L^-T` of their span. An
//! L2-regularised linear model's weights lie in that span (any other component only adds
//! penalty), so fitting on `L` (n x n) and mapping back `w = Q v` gives the same model, at a
//! cost per iteration of n instead of d per row: 12x less for flattened VGG16 maps of flowers.

use ndarray16::linalg::general_mat_mul;
use ndarray16::{Array2, ArrayView2, Axis, LinalgScalar};
use rayon::prelude::*;

/// Below this many multiply-adds a product runs on the calling thread.
const PARALLEL_WORK: usize = 1 << 22;

/// `a . b`, its row blocks computed in parallel on rayon's pool (the process's one pool:
/// called inside parallel fits it adds tasks, not threads).
pub fn par_dot<A>(a: ArrayView2<A>, b: ArrayView2<A>) -> Array2<A>
where
    A: LinalgScalar + Send + Sync,
{
    let (rows, inner, cols) = (a.nrows(), a.ncols(), b.ncols());
    if rows * inner * cols < PARALLEL_WORK {
        return a.dot(&b);
    }
    let block = rows.div_ceil(4 * rayon::current_num_threads()).max(16);
    let mut out = Array2::<A>::zeros((rows, cols));
    let pairs: Vec<_> = out
        .axis_chunks_iter_mut(Axis(0), block)
        .zip(a.axis_chunks_iter(Axis(0), block))
        .collect();
    pairs.into_par_iter().for_each(|(mut out, a)| {
        general_mat_mul(A::one(), &a, &b, A::zero(), &mut out);
    });
    out
}

/// Relative jitter on the diagonal, so a rank-deficient Gram matrix still factors.
const JITTER: f64 = 1e-7;

/// The lower-triangular `L` with `L L^T = X X^T + eps I`.
pub fn reduce(x: ArrayView2<f32>) -> Array2<f64> {
    let k = par_dot(x, x.t()).mapv(|v| v as f64);
    let n = k.nrows();
    let eps = JITTER * (k.diag().sum() / n.max(1) as f64).max(1e-12);
    let mut l = Array2::<f64>::zeros((n, n));
    for i in 0..n {
        for j in 0..=i {
            let (ri, rj) = (l.row(i), l.row(j));
            let (ri, rj) = (
                ri.as_slice().expect("contiguous"),
                rj.as_slice().expect("contiguous"),
            );
            let dot: f64 = ri[..j].iter().zip(&rj[..j]).map(|(a, b)| a * b).sum();
            let v = k[(i, j)] - dot;
            l[(i, j)] = if i == j {
                (v + eps).max(eps).sqrt()
            } else {
                v / l[(j, j)]
            };
        }
    }
    l
}

/// Maps weights `v` (classes x n, on the columns of `L`) back to `w = (X^T L^-T v^T)^T`
/// (classes x d).
pub fn expand(l: &Array2<f64>, v: ArrayView2<f64>, x: ArrayView2<f32>) -> Array2<f32> {
    let (classes, n) = v.dim();
    // Solve L^T u = v_k for each class by back substitution.
    let mut u = Array2::<f64>::zeros((classes, n));
    for k in 0..classes {
        for i in (0..n).rev() {
            let mut s = v[(k, i)];
            for j in i + 1..n {
                s -= l[(j, i)] * u[(k, j)];
            }
            u[(k, i)] = s / l[(i, i)];
        }
    }
    par_dot(u.mapv(|v| v as f32).view(), x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray16::array;

    #[test]
    fn factor_and_map_back_preserve_products() {
        let x = array![[1.0f32, 2.0, 0.0, 1.0], [0.0, 1.0, 3.0, -1.0]];
        let l = reduce(x.view());
        let llt = l.dot(&l.t());
        let k = x.dot(&x.t()).mapv(|v| v as f64);
        assert!((&llt - &k).iter().all(|d| d.abs() < 1e-5), "{llt} vs {k}");
        // A weight v on L's columns, mapped back, gives X w = L v and |w| = |v|.
        let v = array![[0.5, -2.0]];
        let w = expand(&l, v.view(), x.view());
        let xw = x.dot(&w.t()).mapv(|v| v as f64);
        let lv = l.dot(&v.t());
        assert!((&xw - &lv).iter().all(|d| d.abs() < 1e-4), "{xw} vs {lv}");
        let (nw, nv) = (w.iter().map(|a| (a * a) as f64).sum::<f64>(), 4.25);
        assert!((nw - nv).abs() < 1e-4, "{nw}");
    }
}
