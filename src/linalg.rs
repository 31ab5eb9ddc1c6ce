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
