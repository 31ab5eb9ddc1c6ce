//! Dense f32 matrix products shared by the embedder and the language model.

/// out (m × n) = x (m × k) · wᵀ, with w stored (n × k) row-major, on gemm's
/// AVX-512/AVX2 kernels; large products are spread over rayon's threads.
pub fn matmul_transposed(x: &[f32], m: usize, k: usize, w: &[f32], n: usize, out: &mut [f32]) {
    assert!(x.len() >= m * k && w.len() >= n * k && out.len() >= m * n);
    let threads = rayon::current_num_threads();
    let parallelism = if m * n * k > 1 << 18 && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the assert above covers the m×k, n×k and m×n extents the
    // strides describe.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// scores (m × n) = scale · q (m × d) · kᵀ, where the rows of `q` are
/// `q_row` apart and the n rows of `k` are `k_row` apart (views into packed
/// Q/K matrices; attention scores of one head).
pub fn scaled_scores(
    q: &[f32],
    q_row: usize,
    k: &[f32],
    k_row: usize,
    (m, n, d): (usize, usize, usize),
    scale: f32,
    scores: &mut [f32],
) {
    assert!(m > 0 && n > 0 && d > 0);
    assert!(q.len() >= (m - 1) * q_row + d && k.len() >= (n - 1) * k_row + d);
    assert!(scores.len() >= m * n);
    // SAFETY: the asserts cover every element the strides address.
    unsafe {
        gemm::gemm(
            m,
            n,
            d,
            scores.as_mut_ptr(),
            1,
            n as isize,
            false,
            q.as_ptr(),
            1,
            q_row as isize,
            k.as_ptr(),
            k_row as isize,
            1,
            0.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// out (m × d) = p (m × n) · v (n × d), where the rows of `v` are `v_row`
/// apart (attention-weighted values of one head).
pub fn weighted_values(
    p: &[f32],
    v: &[f32],
    v_row: usize,
    (m, n, d): (usize, usize, usize),
    out: &mut [f32],
) {
    assert!(m > 0 && n > 0 && d > 0);
    assert!(p.len() >= m * n && v.len() >= (n - 1) * v_row + d && out.len() >= m * d);
    // SAFETY: the asserts cover every element the strides address.
    unsafe {
        gemm::gemm(
            m,
            d,
            n,
            out.as_mut_ptr(),
            1,
            d as isize,
            false,
            p.as_ptr(),
            1,
            n as isize,
            v.as_ptr(),
            1,
            v_row as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Numerically stable softmax of one row, in place.
pub fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|x| *x *= inv);
}
