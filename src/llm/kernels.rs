//! Matrix-vector products for decoding, on weights kept in their GGUF
//! quantization (Q4_1 and Q8_0), with AVX-512 VNNI where the CPU has it.
//!
//! Decoding one token reads every weight once, so the product is bound by
//! memory and by the instructions spent per weight. candle has no fast
//! kernel for Q4_1, and its Q8_0 tiles need rows that are multiples of 256
//! (SmolLM2's are 576). These kernels quantize the activation vector to
//! 8-bit blocks once, then take 64 weights per `vpdpbusd` with the scales
//! applied per block in f32. Rows are split across rayon's threads.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor};
use rayon::prelude::*;

const BLOCK: usize = 32;
const SUPER_BLOCK: usize = 256;
const Q4K_BYTES: usize = 144;
const Q6K_BYTES: usize = 210;

/// A weight matrix (`rows × cols`, row-major) in a decode-friendly layout.
pub enum PackedMatrix {
    /// 4-bit levels with a scale and a minimum per block of 32:
    /// value = d·q + m. `nibbles` keeps GGUF's byte order (byte j holds
    /// elements j and j+16 of its block).
    Q4_1 {
        rows: usize,
        cols: usize,
        nibbles: Vec<u8>,
        d: Vec<f32>,
        m: Vec<f32>,
    },
    /// 8-bit levels with a scale per block of 32: value = d·q.
    Q8_0 {
        rows: usize,
        cols: usize,
        qs: Vec<i8>,
        d: Vec<f32>,
    },
    /// Q4_K or Q6_K super-blocks of 256, read in place from candle's copy of
    /// the weights (a 7B model cannot afford a second one).
    KQuant {
        rows: usize,
        cols: usize,
        dtype: GgmlDType,
        tensor: Arc<QTensor>,
    },
}

fn f16(bytes: &[u8]) -> f32 {
    half::f16::from_le_bytes([bytes[0], bytes[1]]).to_f32()
}

impl PackedMatrix {
    /// Repack GGUF Q4_1 bytes (blocks of 20: d f16, m f16, 16 bytes of nibbles).
    /// `None` unless the rows hold an even number of blocks.
    pub fn from_q4_1(bytes: &[u8], rows: usize, cols: usize) -> Option<PackedMatrix> {
        let blocks = rows * cols / BLOCK;
        if !cols.is_multiple_of(2 * BLOCK) || bytes.len() != blocks * 20 {
            return None;
        }
        let mut nibbles = Vec::with_capacity(blocks * 16);
        let mut d = Vec::with_capacity(blocks);
        let mut m = Vec::with_capacity(blocks);
        for b in bytes.chunks_exact(20) {
            d.push(f16(&b[0..2]));
            m.push(f16(&b[2..4]));
            nibbles.extend_from_slice(&b[4..20]);
        }
        Some(PackedMatrix::Q4_1 {
            rows,
            cols,
            nibbles,
            d,
            m,
        })
    }

    /// Repack GGUF Q8_0 bytes (blocks of 34: d f16, 32 signed bytes).
    pub fn from_q8_0(bytes: &[u8], rows: usize, cols: usize) -> Option<PackedMatrix> {
        let blocks = rows * cols / BLOCK;
        if !cols.is_multiple_of(2 * BLOCK) || bytes.len() != blocks * 34 {
            return None;
        }
        let mut qs = Vec::with_capacity(blocks * BLOCK);
        let mut d = Vec::with_capacity(blocks);
        for b in bytes.chunks_exact(34) {
            d.push(f16(&b[0..2]));
            qs.extend(b[2..34].iter().map(|&v| v as i8));
        }
        Some(PackedMatrix::Q8_0 { rows, cols, qs, d })
    }

    /// Q4_K / Q6_K weights held by candle, on CPUs with VNNI (`None` otherwise).
    pub fn from_k_quant(tensor: Arc<QTensor>, rows: usize, cols: usize) -> Option<PackedMatrix> {
        let dtype = tensor.dtype();
        let block_bytes = match dtype {
            GgmlDType::Q4K => Q4K_BYTES,
            GgmlDType::Q6K => Q6K_BYTES,
            _ => return None,
        };
        let size = tensor.data().ok()?.len();
        if !has_vnni()
            || !cols.is_multiple_of(SUPER_BLOCK)
            || size != rows * cols / SUPER_BLOCK * block_bytes
        {
            return None;
        }
        Some(PackedMatrix::KQuant {
            rows,
            cols,
            dtype,
            tensor,
        })
    }

    pub fn rows(&self) -> usize {
        match self {
            PackedMatrix::Q4_1 { rows, .. }
            | PackedMatrix::Q8_0 { rows, .. }
            | PackedMatrix::KQuant { rows, .. } => *rows,
        }
    }

    pub fn cols(&self) -> usize {
        match self {
            PackedMatrix::Q4_1 { cols, .. }
            | PackedMatrix::Q8_0 { cols, .. }
            | PackedMatrix::KQuant { cols, .. } => *cols,
        }
    }

    /// `out[i·n + j] = row (range.start + i) · xs[j]` for the rows in
    /// `range` and the `n` vectors. Each row is read once from memory for
    /// all the vectors (it stays in L1 between them), which is what makes a
    /// batched decode step cheaper than one step per sequence; each product
    /// is computed exactly as it is for a single vector.
    fn rows_dot(&self, xs: &[QuantizedVector], range: std::ops::Range<usize>, out: &mut [f32]) {
        let vnni = has_vnni();
        let n = xs.len();
        match self {
            PackedMatrix::KQuant {
                cols,
                dtype,
                tensor,
                ..
            } => {
                let Ok(data) = tensor.data() else {
                    out.iter_mut().for_each(|o| *o = f32::NAN);
                    return;
                };
                let per_row = cols / SUPER_BLOCK;
                let q4k = *dtype == GgmlDType::Q4K;
                let block_bytes = if q4k { Q4K_BYTES } else { Q6K_BYTES };
                let row_of =
                    |r: usize| &data[r * per_row * block_bytes..(r + 1) * per_row * block_bytes];
                if q4k {
                    // Rows several at a time (four for one vector, two for
                    // more), vectors up to four at a time: independent sums
                    // for the core to overlap, each load shared.
                    let rows: Vec<usize> = range.collect();
                    let per_call = if n == 1 { 4 } else { 2 };
                    for (block, rs) in out.chunks_mut(per_call * n).zip(rows.chunks(per_call)) {
                        for j0 in (0..n).step_by(4) {
                            let xs = &xs[j0..];
                            let o = &mut block[j0..];
                            // SAFETY: constructed only with VNNI present; every
                            // row holds `per_row` whole blocks, each x `cols`
                            // values; `o` holds rows·n values from j0.
                            unsafe {
                                match (rs, (n - j0).min(4)) {
                                    (&[a, b, c, d], _) => avx512::q4k_rows::<4, 1>(
                                        [row_of(a), row_of(b), row_of(c), row_of(d)],
                                        xs,
                                        o,
                                        n,
                                    ),
                                    (&[a, b], 4) => {
                                        avx512::q4k_rows::<2, 4>([row_of(a), row_of(b)], xs, o, n)
                                    }
                                    (&[a, b], 3) => {
                                        avx512::q4k_rows::<2, 3>([row_of(a), row_of(b)], xs, o, n)
                                    }
                                    (&[a, b], 2) => {
                                        avx512::q4k_rows::<2, 2>([row_of(a), row_of(b)], xs, o, n)
                                    }
                                    (&[a, b], _) => {
                                        avx512::q4k_rows::<2, 1>([row_of(a), row_of(b)], xs, o, n)
                                    }
                                    (rs, v) => {
                                        for (i, &r) in rs.iter().enumerate() {
                                            let o = &mut o[i * n..];
                                            match v {
                                                4 => {
                                                    avx512::q4k_rows::<1, 4>([row_of(r)], xs, o, n)
                                                }
                                                3 => {
                                                    avx512::q4k_rows::<1, 3>([row_of(r)], xs, o, n)
                                                }
                                                2 => {
                                                    avx512::q4k_rows::<1, 2>([row_of(r)], xs, o, n)
                                                }
                                                _ => {
                                                    avx512::q4k_rows::<1, 1>([row_of(r)], xs, o, n)
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    return;
                }
                if n == 1 {
                    // One vector (a single decode): rows four at a time, so
                    // the core has independent sums to overlap.
                    let rows: Vec<usize> = range.collect();
                    for (o, rs) in out.chunks_mut(4).zip(rows.chunks(4)) {
                        // SAFETY: constructed only with VNNI present; every
                        // row holds `per_row` whole blocks, x has `cols` values.
                        unsafe {
                            match rs {
                                &[a, b, c, d] => avx512::q6k_rows_r::<4>(
                                    [row_of(a), row_of(b), row_of(c), row_of(d)],
                                    &xs[0],
                                    o,
                                ),
                                _ => {
                                    for (o, &r) in o.iter_mut().zip(rs) {
                                        let o = std::slice::from_mut(o);
                                        avx512::q6k_rows_r::<1>([row_of(r)], &xs[0], o);
                                    }
                                }
                            }
                        }
                    }
                    return;
                }
                for (o, r) in out.chunks_exact_mut(n).zip(range) {
                    let row = row_of(r);
                    // SAFETY: constructed only with VNNI present; the row holds
                    // `per_row` whole blocks and every x has `cols` values.
                    by_fours(xs, o, |x, o| unsafe {
                        match x.len() {
                            4 => avx512::q6k_rows::<4>(row, x, o),
                            3 => avx512::q6k_rows::<3>(row, x, o),
                            2 => avx512::q6k_rows::<2>(row, x, o),
                            _ => avx512::q6k_rows::<1>(row, x, o),
                        }
                    });
                }
            }
            PackedMatrix::Q4_1 {
                cols,
                nibbles,
                d,
                m,
                ..
            } => {
                let nb = cols / BLOCK;
                for (o, r) in out.chunks_exact_mut(n).zip(range) {
                    let qs = &nibbles[r * nb * 16..(r + 1) * nb * 16];
                    let (d, m) = (&d[r * nb..(r + 1) * nb], &m[r * nb..(r + 1) * nb]);
                    if vnni {
                        // SAFETY: VNNI support checked at run time; slice
                        // lengths are consistent by construction.
                        by_fours(xs, o, |x, o| unsafe {
                            match x.len() {
                                4 => avx512::q4_1_rows::<4>(qs, d, m, x, o),
                                3 => avx512::q4_1_rows::<3>(qs, d, m, x, o),
                                2 => avx512::q4_1_rows::<2>(qs, d, m, x, o),
                                _ => avx512::q4_1_rows::<1>(qs, d, m, x, o),
                            }
                        });
                    } else {
                        for (o, x) in o.iter_mut().zip(xs) {
                            *o = scalar_q4_1_row(qs, d, &x.q, &x.d)
                                + m.iter().zip(&x.sums).map(|(m, s)| m * s).sum::<f32>();
                        }
                    }
                }
            }
            PackedMatrix::Q8_0 { cols, qs, d, .. } => {
                let nb = cols / BLOCK;
                for (o, r) in out.chunks_exact_mut(n).zip(range) {
                    let w = &qs[r * cols..(r + 1) * cols];
                    let d = &d[r * nb..(r + 1) * nb];
                    if vnni {
                        // SAFETY: as above.
                        by_fours(xs, o, |x, o| unsafe {
                            match x.len() {
                                4 => avx512::q8_0_rows::<4>(w, d, x, o),
                                3 => avx512::q8_0_rows::<3>(w, d, x, o),
                                2 => avx512::q8_0_rows::<2>(w, d, x, o),
                                _ => avx512::q8_0_rows::<1>(w, d, x, o),
                            }
                        });
                    } else {
                        for (o, x) in o.iter_mut().zip(xs) {
                            *o = scalar_q8_0_row(w, d, &x.q, &x.d);
                        }
                    }
                }
            }
        }
    }
}

/// Run a multi-vector row kernel over the vectors four at a time: the
/// weights are unpacked once per group instead of once per vector.
fn by_fours(
    xs: &[QuantizedVector],
    out: &mut [f32],
    mut kernel: impl FnMut(&[QuantizedVector], &mut [f32]),
) {
    for (x, o) in xs.chunks(4).zip(out.chunks_mut(4)) {
        kernel(x, o);
    }
}

fn has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static VNNI: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *VNNI.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vnni")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `a · b` (equal lengths).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    if has_vnni() && a.len() == b.len() && a.len().is_multiple_of(16) {
        // SAFETY: AVX-512F is implied by the VNNI check; lengths checked.
        return unsafe { avx512::dot_f32(a, b) };
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `y += w·x` (equal lengths).
pub fn axpy(w: f32, x: &[f32], y: &mut [f32]) {
    if has_vnni() && x.len() == y.len() && x.len().is_multiple_of(16) {
        // SAFETY: as in `dot`.
        return unsafe { avx512::axpy_f32(w, x, y) };
    }
    y.iter_mut().zip(x).for_each(|(y, x)| *y += w * x);
}

/// `a · b` for an f32 query against an f16 cached key (equal lengths).
pub fn dot_f16(a: &[f32], b: &[half::f16]) -> f32 {
    if has_vnni() && a.len() == b.len() && a.len().is_multiple_of(16) {
        // SAFETY: AVX-512F is implied by the VNNI check; lengths checked.
        return unsafe { avx512::dot_f32_f16(a, b) };
    }
    a.iter().zip(b).map(|(x, y)| x * y.to_f32()).sum()
}

/// `y += w·x` for an f16 cached value row (equal lengths).
pub fn axpy_f16(w: f32, x: &[half::f16], y: &mut [f32]) {
    if has_vnni() && x.len() == y.len() && x.len().is_multiple_of(16) {
        // SAFETY: as in `dot_f16`.
        return unsafe { avx512::axpy_f16(w, x, y) };
    }
    y.iter_mut().zip(x).for_each(|(y, x)| *y += w * x.to_f32());
}

/// The activation vector quantized to 8-bit blocks of 32.
pub struct QuantizedVector {
    /// Natural order.
    q: Vec<i8>,
    /// Per pair of blocks: [b0 0..16, b1 0..16, b0 16..32, b1 16..32], the
    /// order the Q4_1 kernel unpacks nibbles in.
    q_perm: Vec<i8>,
    d: Vec<f32>,
    /// Per 128 values: blocks 0, 2, 1, 3, the order Q4_K nibbles unpack in.
    q_k: Vec<i8>,
    /// d · Σq per block (multiplies the weight minimum of Q4_1 / Q4_K).
    sums: Vec<f32>,
    /// 32 · Σq per group of four values (Q6_K's zero point of 32).
    offsets: Vec<i32>,
}

impl QuantizedVector {
    pub fn new(x: &[f32]) -> QuantizedVector {
        let nb = x.len() / BLOCK;
        let mut q = vec![0i8; nb * BLOCK];
        let mut d = Vec::with_capacity(nb);
        let mut sums = Vec::with_capacity(nb);
        for (block, qb) in x.chunks_exact(BLOCK).zip(q.chunks_exact_mut(BLOCK)) {
            let amax = block.iter().fold(0f32, |a, v| a.max(v.abs()));
            let scale = amax / 127.0;
            let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            let mut sum = 0i32;
            for (v, o) in block.iter().zip(qb.iter_mut()) {
                let level = (v * inv).round().clamp(-127.0, 127.0) as i8;
                *o = level;
                sum += i32::from(level);
            }
            d.push(scale);
            sums.push(scale * sum as f32);
        }
        let mut q_perm = vec![0i8; q.len()];
        for (src, dst) in q.chunks_exact(64).zip(q_perm.chunks_exact_mut(64)) {
            dst[..16].copy_from_slice(&src[..16]);
            dst[16..32].copy_from_slice(&src[32..48]);
            dst[32..48].copy_from_slice(&src[16..32]);
            dst[48..].copy_from_slice(&src[48..]);
        }
        let mut q_k = q.clone();
        for (src, dst) in q.chunks_exact(128).zip(q_k.chunks_exact_mut(128)) {
            dst[32..64].copy_from_slice(&src[64..96]);
            dst[64..96].copy_from_slice(&src[32..64]);
        }
        let offsets = q
            .chunks_exact(4)
            .map(|g| 32 * g.iter().map(|&v| i32::from(v)).sum::<i32>())
            .collect();
        QuantizedVector {
            q,
            q_perm,
            q_k,
            d,
            sums,
            offsets,
        }
    }
}

/// `y = W·x` for several matrices sharing the input `x` (e.g. Q, K and V),
/// in one parallel region. Returns one output vector per matrix.
pub fn gemv_many(matrices: &[&PackedMatrix], x: &[f32]) -> Vec<Vec<f32>> {
    gemm_many(matrices, x, 1)
}

/// `Y = X·Wᵀ` for `n` input rows (`x` is `n × cols`, row-major) and
/// several matrices sharing them, in one parallel region: the batched
/// decode step, one row per running sequence. Each matrix row is read once
/// for all `n` inputs. Returns one `n × rows` output per matrix; row `j` of
/// it is exactly what [`gemv_many`] gives for input row `j` alone.
pub fn gemm_many(matrices: &[&PackedMatrix], x: &[f32], n: usize) -> Vec<Vec<f32>> {
    let n = n.max(1);
    let cols = x.len() / n;
    // Every kernel's SAFETY argument rests on each input row having exactly
    // the matrix's column count.
    assert!(
        matrices.iter().all(|m| m.cols() * n == x.len()),
        "gemm_many: {n} rows of {} values do not match the matrices",
        x.len() / n
    );
    let qxs: Vec<QuantizedVector> = x
        .chunks_exact(cols.max(1))
        .map(QuantizedVector::new)
        .collect();
    // Outputs row-major by matrix row (`rows × n`), so each task's rows are
    // one contiguous slice; transposed at the end.
    let mut outs: Vec<Vec<f32>> = matrices.iter().map(|m| vec![0f32; m.rows() * n]).collect();
    // Work items: slices of rows small enough to balance the threads.
    const ROWS_PER_TASK: usize = 64;
    let mut tasks: Vec<(usize, usize, &mut [f32])> = Vec::new();
    for (i, out) in outs.iter_mut().enumerate() {
        for (c, chunk) in out.chunks_mut(ROWS_PER_TASK * n).enumerate() {
            tasks.push((i, c * ROWS_PER_TASK, chunk));
        }
    }
    let work: usize = matrices.iter().map(|m| m.rows() * m.cols() * n).sum();
    let run = |(i, start, chunk): &mut (usize, usize, &mut [f32])| {
        let rows = chunk.len() / n;
        matrices[*i].rows_dot(&qxs, *start..*start + rows, chunk);
    };
    // Below ~256k products a parallel region costs more than it saves.
    if work < 1 << 18 {
        tasks.iter_mut().for_each(run);
    } else {
        tasks.par_iter_mut().for_each(run);
    }
    if n == 1 {
        return outs;
    }
    outs.into_iter()
        .zip(matrices)
        .map(|(by_row, m)| {
            let rows = m.rows();
            let mut by_input = vec![0f32; rows * n];
            for (r, values) in by_row.chunks_exact(n).enumerate() {
                for (j, v) in values.iter().enumerate() {
                    by_input[j * rows + r] = *v;
                }
            }
            by_input
        })
        .collect()
}

fn scalar_q4_1_row(qs: &[u8], d: &[f32], xq: &[i8], xd: &[f32]) -> f32 {
    let mut total = 0f32;
    for b in 0..d.len() {
        let mut acc = 0i32;
        for j in 0..16 {
            let byte = qs[b * 16 + j];
            acc += i32::from(byte & 0x0F) * i32::from(xq[b * 32 + j]);
            acc += i32::from(byte >> 4) * i32::from(xq[b * 32 + j + 16]);
        }
        total += d[b] * xd[b] * acc as f32;
    }
    total
}

fn scalar_q8_0_row(w: &[i8], d: &[f32], xq: &[i8], xd: &[f32]) -> f32 {
    let mut total = 0f32;
    for b in 0..d.len() {
        let acc: i32 = w[b * 32..(b + 1) * 32]
            .iter()
            .zip(&xq[b * 32..(b + 1) * 32])
            .map(|(&a, &b)| i32::from(a) * i32::from(b))
            .sum();
        total += d[b] * xd[b] * acc as f32;
    }
    total
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Σ over blocks of d_w·d_x·(levels · x) + m_w·(d_x·Σx), two blocks
    /// (64 weights) per step, for up to four vectors: the nibbles are
    /// unpacked once for all of them, and each vector's sums run in the same
    /// order as for a vector alone (so a batch gives the same bits).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn q4_1_rows<const V: usize>(
        qs: &[u8],
        d: &[f32],
        m: &[f32],
        xs: &[super::QuantizedVector],
        out: &mut [f32],
    ) {
        assert!(xs.len() >= V && out.len() >= V);
        let v = V;
        let pairs = d.len() / 2;
        let low = _mm256_set1_epi8(0x0F);
        // Lane l of the dot product belongs to block (l / 4) % 2.
        let pick = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1);
        let mut acc = [[_mm512_setzero_ps(); 2]; V];
        let mut mins = [_mm_setzero_ps(); V];
        for p in 0..pairs {
            // SAFETY (whole block): p < pairs keeps every load inside the
            // row's 32·pairs nibble bytes, and inside each vector's 64·pairs
            // activations and 2·pairs scales.
            unsafe {
                let mw = _mm_castpd_ps(_mm_load_sd(m.as_ptr().add(2 * p) as *const f64));
                let dw = _mm_castpd_ps(_mm_load_sd(d.as_ptr().add(2 * p) as *const f64));
                let packed = _mm256_loadu_si256(qs.as_ptr().add(p * 32) as *const __m256i);
                let lo = _mm256_and_si256(packed, low);
                let hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low);
                let w = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
                for j in 0..v {
                    let x = &xs[j];
                    let sx = _mm_castpd_ps(_mm_load_sd(x.sums.as_ptr().add(2 * p) as *const f64));
                    mins[j] = _mm_fmadd_ps(mw, sx, mins[j]);
                    let xq = _mm512_loadu_si512(x.q_perm.as_ptr().add(p * 64) as *const _);
                    let dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, xq);
                    let dx = _mm_castpd_ps(_mm_load_sd(x.d.as_ptr().add(2 * p) as *const f64));
                    let scale =
                        _mm512_permutexvar_ps(pick, _mm512_castps128_ps512(_mm_mul_ps(dw, dx)));
                    acc[j][p & 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc[j][p & 1]);
                }
            }
        }
        for j in 0..v {
            let mut lanes = [0f32; 4];
            // SAFETY: `lanes` holds four floats.
            unsafe { _mm_storeu_ps(lanes.as_mut_ptr(), mins[j]) };
            out[j] =
                _mm512_reduce_add_ps(_mm512_add_ps(acc[j][0], acc[j][1])) + lanes[0] + lanes[1];
        }
    }

    #[inline(always)]
    fn f16_at(bytes: &[u8], at: usize) -> f32 {
        half::f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
    }

    /// For the four products of a Q4_K super-block, the sub-block of each
    /// lane: (0, 2), (1, 3), (4, 6), (5, 7).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn q4k_picks() -> [__m512i; 4] {
        [
            _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2),
            _mm512_setr_epi32(1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3),
            _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6),
            _mm512_setr_epi32(5, 5, 5, 5, 5, 5, 5, 5, 7, 7, 7, 7, 7, 7, 7, 7),
        ]
    }

    /// For the four products of a Q6_K super-block, the group of 16 values
    /// (its scale) of each lane.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn q6k_picks() -> [__m512i; 4] {
        [
            _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
            _mm512_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7),
            _mm512_setr_epi32(8, 8, 8, 8, 9, 9, 9, 9, 10, 10, 10, 10, 11, 11, 11, 11),
            _mm512_setr_epi32(
                12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15,
            ),
        ]
    }

    /// Half `h` of a Q6_K super-block's six-bit levels, as two pairs of 32
    /// bytes (each pair one 64-value product): the low nibbles with the 2
    /// high bits moved to bits 4-5 (the masked values are below 4, so
    /// 16-bit shifts cannot carry across bytes).
    ///
    /// SAFETY: `block` points at a whole 210-byte Q6_K block; `h` is 0 or 1.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn q6k_levels(block: *const u8, h: usize) -> [(__m256i, __m256i); 2] {
        // SAFETY: the caller's block holds bytes 64h..64h+64 and 128+32h..+32.
        unsafe {
            let low = _mm256_set1_epi8(0x0F);
            let two = _mm256_set1_epi8(0x03);
            let ql = block.add(64 * h);
            let qh = block.add(128 + 32 * h);
            let a = _mm256_loadu_si256(ql as *const __m256i);
            let b = _mm256_loadu_si256(ql.add(32) as *const __m256i);
            let hb = _mm256_loadu_si256(qh as *const __m256i);
            let high = |shift: i32| {
                let bits = match shift {
                    0 => hb,
                    2 => _mm256_srli_epi16(hb, 2),
                    4 => _mm256_srli_epi16(hb, 4),
                    _ => _mm256_srli_epi16(hb, 6),
                };
                _mm256_slli_epi16(_mm256_and_si256(bits, two), 4)
            };
            let q1 = _mm256_or_si256(_mm256_and_si256(a, low), high(0));
            let q2 = _mm256_or_si256(_mm256_and_si256(b, low), high(2));
            let q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), low), high(4));
            let q4 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b, 4), low), high(6));
            [(q1, q2), (q3, q4)]
        }
    }

    /// A Q4_K super-block's d·scale and dmin·min for its 8 sub-blocks.
    ///
    /// SAFETY: `block` holds a whole 144-byte Q4_K super-block.
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn q4k_block_scales(block: &[u8]) -> (__m256, __m256) {
        let unpacked = q4k_scales(&block[4..16]);
        // d and dmin: two f16 side by side, converted in one instruction.
        let both = _mm_cvtph_ps(_mm_cvtsi32_si128(i32::from_le_bytes([
            block[0], block[1], block[2], block[3],
        ])));
        let d = _mm256_broadcastss_ps(both);
        let dmin = _mm256_broadcastss_ps(_mm_movehdup_ps(both));
        // SAFETY: `unpacked` holds 16 bytes: 8 scales, then 8 minimums.
        let (sc, m) = unsafe {
            (
                _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(
                    unpacked.as_ptr() as *const __m128i
                ))),
                _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(
                    unpacked.as_ptr().add(8) as *const __m128i,
                ))),
            )
        };
        (_mm256_mul_ps(d, sc), _mm256_mul_ps(dmin, m))
    }

    /// The 8 six-bit scales and 8 minimums of a Q4_K super-block, unpacked
    /// from its 12 bytes with word operations (llama.cpp's kmask trick):
    /// bytes 0..8 of the result are the scales, 8..16 the minimums.
    #[inline(always)]
    fn q4k_scales(packed: &[u8]) -> [u8; 16] {
        const KMASK1: u32 = 0x3f3f_3f3f;
        const KMASK2: u32 = 0x0f0f_0f0f;
        const KMASK3: u32 = 0x0303_0303;
        let word = |i: usize| {
            u32::from_le_bytes([
                packed[4 * i],
                packed[4 * i + 1],
                packed[4 * i + 2],
                packed[4 * i + 3],
            ])
        };
        let (u0, u1, u2) = (word(0), word(1), word(2));
        let s0 = u0 & KMASK1;
        let s1 = (u2 & KMASK2) | (((u0 >> 6) & KMASK3) << 4);
        let m0 = u1 & KMASK1;
        let m1 = ((u2 >> 4) & KMASK2) | (((u1 >> 6) & KMASK3) << 4);
        let mut out = [0u8; 16];
        out[0..4].copy_from_slice(&s0.to_le_bytes());
        out[4..8].copy_from_slice(&s1.to_le_bytes());
        out[8..12].copy_from_slice(&m0.to_le_bytes());
        out[12..16].copy_from_slice(&m1.to_le_bytes());
        out
    }

    /// `R` rows of Q4_K super-blocks (144 bytes: d, dmin, 12 bytes of 6-bit
    /// scales/mins, 128 bytes of nibbles) against up to four vectors
    /// quantized per 32: value = d·sc·q − dmin·m per sub-block of 32. Each
    /// row's scales and nibbles are unpacked once for all vectors, each
    /// vector's activations loaded once for all rows, and the R×V sums are
    /// independent chains for the core to overlap. Row `r`'s product with
    /// vector `j` goes to `out[r·stride + j]` and runs in the same order
    /// whatever R and V are (same bits alone or batched).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl,f16c")]
    pub unsafe fn q4k_rows<const R: usize, const V: usize>(
        rows: [&[u8]; R],
        xs: &[super::QuantizedVector],
        out: &mut [f32],
        stride: usize,
    ) {
        assert!(R > 0 && xs.len() >= V && out.len() >= (R - 1) * stride + V);
        let low = _mm512_set1_epi8(0x0F);
        // Sub-block of each lane for the four products of a super-block:
        // (0, 2), (1, 3), (4, 6), (5, 7).
        // SAFETY: this kernel has AVX-512F.
        let picks = unsafe { q4k_picks() };
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        let mut mins = [[_mm256_setzero_ps(); V]; R];
        let blocks = rows[0].len() / super::Q4K_BYTES;
        for sb in 0..blocks {
            // SAFETY: every row holds `blocks` whole 144-byte super-blocks
            // and every x their 256 activations and 8 scales each.
            unsafe {
                let mut dx = [_mm256_setzero_ps(); V];
                let mut sx = [_mm256_setzero_ps(); V];
                for j in 0..V {
                    dx[j] = _mm256_loadu_ps(xs[j].d.as_ptr().add(sb * 8));
                    sx[j] = _mm256_loadu_ps(xs[j].sums.as_ptr().add(sb * 8));
                }
                let mut scale = [[_mm512_setzero_ps(); V]; R];
                let mut qs = [std::ptr::null::<u8>(); R];
                for r in 0..R {
                    let block = &rows[r][sb * super::Q4K_BYTES..(sb + 1) * super::Q4K_BYTES];
                    let (d_sc, dmin_m) = q4k_block_scales(block);
                    for j in 0..V {
                        mins[r][j] = _mm256_fmadd_ps(dmin_m, sx[j], mins[r][j]);
                        scale[r][j] = _mm512_castps256_ps512(_mm256_mul_ps(d_sc, dx[j]));
                    }
                    qs[r] = block.as_ptr().add(16);
                }
                // 64 bytes of nibbles hold sub-blocks 2j, 2j+2 (low halves)
                // and 2j+1, 2j+3 (high halves); x comes in that order (`q_k`).
                for (half, picks) in [(0usize, &picks[0..2]), (1, &picks[2..4])] {
                    let base = sb * 256 + 128 * half;
                    let mut xl = [_mm512_setzero_si512(); V];
                    let mut xh = [_mm512_setzero_si512(); V];
                    for j in 0..V {
                        xl[j] = _mm512_loadu_si512(xs[j].q_k.as_ptr().add(base) as *const _);
                        xh[j] = _mm512_loadu_si512(xs[j].q_k.as_ptr().add(base + 64) as *const _);
                    }
                    for r in 0..R {
                        let packed = _mm512_loadu_si512(qs[r].add(64 * half) as *const _);
                        let lo = _mm512_and_si512(packed, low);
                        let hi = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low);
                        for (w, pick, x) in [(lo, picks[0], &xl), (hi, picks[1], &xh)] {
                            for j in 0..V {
                                let dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, x[j]);
                                let sv = _mm512_permutexvar_ps(pick, scale[r][j]);
                                acc[r][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), sv, acc[r][j]);
                            }
                        }
                    }
                }
            }
        }
        for r in 0..R {
            for j in 0..V {
                let mut lanes = [0f32; 8];
                // SAFETY: `lanes` holds eight floats.
                unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), mins[r][j]) };
                out[r * stride + j] = _mm512_reduce_add_ps(acc[r][j]) - lanes.iter().sum::<f32>();
            }
        }
    }

    /// One row of Q6_K super-blocks (210 bytes: 128 low-nibble bytes, 64
    /// bytes of 2-bit highs, 16 signed scales per 16 values, d) against up to
    /// four vectors quantized per 32. value = d·sc·(q − 32); the −32 comes in
    /// through each vector's `offsets` (32·Σx per group of four). The
    /// six-bit levels are assembled once for all vectors.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl")]
    pub unsafe fn q6k_rows<const V: usize>(
        row: &[u8],
        xs: &[super::QuantizedVector],
        out: &mut [f32],
    ) {
        assert!(xs.len() >= V && out.len() >= V);
        let spread = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        // SAFETY: this kernel has AVX-512F.
        let picks = unsafe { q6k_picks() };
        let mut acc = [_mm512_setzero_ps(); V];
        for (sb, block) in row.chunks_exact(super::Q6K_BYTES).enumerate() {
            // SAFETY: loads stay inside this 210-byte block, the 8 scales of
            // each x for this super-block, its 256 activations and 64 offsets.
            unsafe {
                let d = _mm512_set1_ps(f16_at(block, 208));
                let sc = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                    block.as_ptr().add(192) as *const __m128i,
                )));
                // Scale of each group of 16 values, with d and x's scale in.
                let mut scale = [_mm512_setzero_ps(); V];
                for j in 0..V {
                    let dx = _mm512_permutexvar_ps(
                        spread,
                        _mm512_castps256_ps512(_mm256_loadu_ps(xs[j].d.as_ptr().add(sb * 8))),
                    );
                    scale[j] = _mm512_mul_ps(_mm512_mul_ps(sc, dx), d);
                }
                for h in 0..2 {
                    let levels = q6k_levels(block.as_ptr(), h);
                    for (k, (lo, hi)) in levels.into_iter().enumerate() {
                        let at = sb * 256 + 128 * h + 64 * k;
                        let w = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
                        for j in 0..V {
                            let x = &xs[j];
                            let xv = _mm512_loadu_si512(x.q.as_ptr().add(at) as *const _);
                            let neg_off = _mm512_sub_epi32(
                                _mm512_setzero_si512(),
                                _mm512_loadu_si512(x.offsets.as_ptr().add(at / 4) as *const _),
                            );
                            let dot = _mm512_dpbusd_epi32(neg_off, w, xv);
                            let sv = _mm512_permutexvar_ps(picks[2 * h + k], scale[j]);
                            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), sv, acc[j]);
                        }
                    }
                }
            }
        }
        for j in 0..V {
            out[j] = _mm512_reduce_add_ps(acc[j]);
        }
    }

    /// `R` rows of Q6_K super-blocks against one vector, interleaved as in
    /// [`q4k_rows`]; every row's sums run exactly as in [`q6k_rows`] with
    /// one vector.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl")]
    pub unsafe fn q6k_rows_r<const R: usize>(
        rows: [&[u8]; R],
        x: &super::QuantizedVector,
        out: &mut [f32],
    ) {
        assert!(out.len() >= R);
        let spread = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        // SAFETY: this kernel has AVX-512F.
        let picks = unsafe { q6k_picks() };
        let mut acc = [_mm512_setzero_ps(); R];
        let blocks = rows[0].len() / super::Q6K_BYTES;
        for sb in 0..blocks {
            // SAFETY: as in `q6k_rows`: every row holds `blocks` whole
            // super-blocks, x their activations, scales and offsets.
            unsafe {
                let dx = _mm512_permutexvar_ps(
                    spread,
                    _mm512_castps256_ps512(_mm256_loadu_ps(x.d.as_ptr().add(sb * 8))),
                );
                let mut scale = [_mm512_setzero_ps(); R];
                let mut blocks_of = [std::ptr::null::<u8>(); R];
                for r in 0..R {
                    let block = &rows[r][sb * super::Q6K_BYTES..(sb + 1) * super::Q6K_BYTES];
                    let d = _mm512_set1_ps(f16_at(block, 208));
                    let sc = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                        block.as_ptr().add(192) as *const __m128i,
                    )));
                    scale[r] = _mm512_mul_ps(_mm512_mul_ps(sc, dx), d);
                    blocks_of[r] = block.as_ptr();
                }
                for h in 0..2 {
                    let mut xv = [_mm512_setzero_si512(); 2];
                    let mut neg_off = [_mm512_setzero_si512(); 2];
                    for k in 0..2 {
                        let at = sb * 256 + 128 * h + 64 * k;
                        xv[k] = _mm512_loadu_si512(x.q.as_ptr().add(at) as *const _);
                        neg_off[k] = _mm512_sub_epi32(
                            _mm512_setzero_si512(),
                            _mm512_loadu_si512(x.offsets.as_ptr().add(at / 4) as *const _),
                        );
                    }
                    for r in 0..R {
                        let levels = q6k_levels(blocks_of[r], h);
                        for (k, (lo, hi)) in levels.into_iter().enumerate() {
                            let w = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
                            let dot = _mm512_dpbusd_epi32(neg_off[k], w, xv[k]);
                            let sv = _mm512_permutexvar_ps(picks[2 * h + k], scale[r]);
                            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), sv, acc[r]);
                        }
                    }
                }
            }
        }
        for r in 0..R {
            out[r] = _mm512_reduce_add_ps(acc[r]);
        }
    }

    /// Dot product of f32 slices of equal length (a multiple of 16).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = _mm512_setzero_ps();
        for i in (0..a.len()).step_by(16) {
            // SAFETY: the caller passes equal lengths that are multiples of 16.
            unsafe {
                let x = _mm512_loadu_ps(a.as_ptr().add(i));
                let y = _mm512_loadu_ps(b.as_ptr().add(i));
                acc = _mm512_fmadd_ps(x, y, acc);
            }
        }
        _mm512_reduce_add_ps(acc)
    }

    /// Dot product of f32 and f16 slices of equal length (a multiple of 16).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_f32_f16(a: &[f32], b: &[half::f16]) -> f32 {
        let mut acc = _mm512_setzero_ps();
        for i in (0..a.len()).step_by(16) {
            // SAFETY: the caller passes equal lengths that are multiples of
            // 16; 16 f16 values are 32 bytes.
            unsafe {
                let x = _mm512_loadu_ps(a.as_ptr().add(i));
                let y = _mm512_cvtph_ps(_mm256_loadu_si256(b.as_ptr().add(i) as *const __m256i));
                acc = _mm512_fmadd_ps(x, y, acc);
            }
        }
        _mm512_reduce_add_ps(acc)
    }

    /// y += w·x for an f16 x and an f32 y of equal length (a multiple of 16).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn axpy_f16(w: f32, x: &[half::f16], y: &mut [f32]) {
        let wv = _mm512_set1_ps(w);
        for i in (0..x.len()).step_by(16) {
            // SAFETY: as above.
            unsafe {
                let xv = _mm512_cvtph_ps(_mm256_loadu_si256(x.as_ptr().add(i) as *const __m256i));
                let yv = _mm512_loadu_ps(y.as_ptr().add(i));
                _mm512_storeu_ps(y.as_mut_ptr().add(i), _mm512_fmadd_ps(wv, xv, yv));
            }
        }
    }

    /// y += w·x for f32 slices of equal length (a multiple of 16).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn axpy_f32(w: f32, x: &[f32], y: &mut [f32]) {
        let wv = _mm512_set1_ps(w);
        for i in (0..x.len()).step_by(16) {
            // SAFETY: as above.
            unsafe {
                let xv = _mm512_loadu_ps(x.as_ptr().add(i));
                let yv = _mm512_loadu_ps(y.as_ptr().add(i));
                _mm512_storeu_ps(y.as_mut_ptr().add(i), _mm512_fmadd_ps(wv, xv, yv));
            }
        }
    }

    /// Signed × signed via |w| (unsigned) · sign(w)·x, two blocks per step,
    /// for up to four vectors (|w| and its signs taken once for all).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn q8_0_rows<const V: usize>(
        w: &[i8],
        d: &[f32],
        xs: &[super::QuantizedVector],
        out: &mut [f32],
    ) {
        assert!(xs.len() >= V && out.len() >= V);
        let v = V;
        let pairs = d.len() / 2;
        let pick = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        let zero = _mm512_setzero_si512();
        let mut acc = [[_mm512_setzero_ps(); 2]; V];
        for p in 0..pairs {
            // SAFETY: p < pairs keeps the 64-byte loads inside the row and
            // each vector's activations and scales.
            unsafe {
                let wv = _mm512_loadu_si512(w.as_ptr().add(p * 64) as *const _);
                let negative = _mm512_movepi8_mask(wv);
                let magnitude = _mm512_abs_epi8(wv);
                let dw = _mm_castpd_ps(_mm_load_sd(d.as_ptr().add(2 * p) as *const f64));
                for j in 0..v {
                    let x = &xs[j];
                    let xv = _mm512_loadu_si512(x.q.as_ptr().add(p * 64) as *const _);
                    let x_signed = _mm512_mask_sub_epi8(xv, negative, zero, xv);
                    let dot = _mm512_dpbusd_epi32(zero, magnitude, x_signed);
                    let dx = _mm_castpd_ps(_mm_load_sd(x.d.as_ptr().add(2 * p) as *const f64));
                    let scale =
                        _mm512_permutexvar_ps(pick, _mm512_castps128_ps512(_mm_mul_ps(dw, dx)));
                    acc[j][p & 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc[j][p & 1]);
                }
            }
        }
        for j in 0..v {
            out[j] = _mm512_reduce_add_ps(_mm512_add_ps(acc[j][0], acc[j][1]));
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod avx512 {
    pub unsafe fn q4_1_rows<const V: usize>(
        qs: &[u8],
        d: &[f32],
        m: &[f32],
        xs: &[super::QuantizedVector],
        out: &mut [f32],
    ) {
        let _ = (qs, d, m, xs, out);
        unreachable!("VNNI is only detected on x86_64")
    }
    pub unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        let _ = (a, b);
        unreachable!("AVX-512 is only detected on x86_64")
    }
    pub unsafe fn q4k_rows<const R: usize, const V: usize>(
        rows: [&[u8]; R],
        xs: &[super::QuantizedVector],
        out: &mut [f32],
        stride: usize,
    ) {
        let _ = (rows, xs, out, stride);
        unreachable!("VNNI is only detected on x86_64")
    }
    pub unsafe fn q6k_rows<const V: usize>(
        row: &[u8],
        xs: &[super::QuantizedVector],
        out: &mut [f32],
    ) {
        let _ = (row, xs, out);
        unreachable!("VNNI is only detected on x86_64")
    }
    pub unsafe fn q6k_rows_r<const R: usize>(
        rows: [&[u8]; R],
        x: &super::QuantizedVector,
        out: &mut [f32],
    ) {
        let _ = (rows, x, out);
        unreachable!("VNNI is only detected on x86_64")
    }
    pub unsafe fn axpy_f32(w: f32, x: &[f32], y: &mut [f32]) {
        let _ = (w, x, y);
        unreachable!("AVX-512 is only detected on x86_64")
    }
    pub unsafe fn dot_f32_f16(a: &[f32], b: &[half::f16]) -> f32 {
        let _ = (a, b);
        unreachable!("AVX-512 is only detected on x86_64")
    }
    pub unsafe fn axpy_f16(w: f32, x: &[half::f16], y: &mut [f32]) {
        let _ = (w, x, y);
        unreachable!("AVX-512 is only detected on x86_64")
    }
    pub unsafe fn q8_0_rows<const V: usize>(
        w: &[i8],
        d: &[f32],
        xs: &[super::QuantizedVector],
        out: &mut [f32],
    ) {
        let _ = (w, d, xs, out);
        unreachable!("VNNI is only detected on x86_64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *state >> 33
    }

    #[test]
    fn k_quant_kernels_match_candle_dequantization() {
        use candle_core::{Device, Tensor};
        if !has_vnni() {
            return; // the K-quant path is only built on VNNI machines
        }
        let (rows, cols) = (24, 512);
        let mut s = 11u64;
        let values: Vec<f32> = (0..rows * cols)
            .map(|_| (lcg(&mut s) % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        let x: Vec<f32> = (0..cols)
            .map(|_| (lcg(&mut s) % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        let t = Tensor::from_vec(values, (rows, cols), &Device::Cpu).unwrap();
        for dtype in [GgmlDType::Q4K, GgmlDType::Q6K] {
            let q = Arc::new(QTensor::quantize(&t, dtype).unwrap());
            let dense: Vec<f32> = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let m = PackedMatrix::from_k_quant(q, rows, cols).expect("packable");
            let out = gemv_many(&[&m], &x).remove(0);
            for r in 0..rows {
                let row = &dense[r * cols..(r + 1) * cols];
                let exact: f32 = row.iter().zip(&x).map(|(w, x)| w * x).sum();
                let scale: f32 = row.iter().zip(&x).map(|(w, x)| (w * x).abs()).sum();
                assert!(
                    (out[r] - exact).abs() <= 0.01 * scale + 1e-3,
                    "{dtype:?} row {r}: {} vs {exact}",
                    out[r]
                );
            }
        }
    }

    /// Several input rows in one product give, row by row, exactly what
    /// each gives alone (the batched decode step relies on it).
    #[test]
    fn batched_products_equal_single_products_bit_for_bit() {
        let (rows, cols, n) = (70, 128, 5);
        let mut s = 3u64;
        let mut q80 = Vec::new();
        for _ in 0..rows * cols / 32 {
            let dh = half::f16::from_f32((lcg(&mut s) % 100 + 1) as f32 / 10000.0);
            q80.extend_from_slice(&dh.to_le_bytes());
            for _ in 0..32 {
                q80.push(((lcg(&mut s) % 255) as i32 - 127) as i8 as u8);
            }
        }
        let mut q41 = Vec::new();
        for _ in 0..rows * cols / 32 {
            for v in [0.01f32, -0.02] {
                q41.extend_from_slice(&half::f16::from_f32(v).to_le_bytes());
            }
            q41.extend((0..16).map(|_| (lcg(&mut s) % 256) as u8));
        }
        let a = PackedMatrix::from_q8_0(&q80, rows, cols).unwrap();
        let b = PackedMatrix::from_q4_1(&q41, rows, cols).unwrap();
        let mut matrices = vec![a, b];
        if has_vnni() {
            use candle_core::{Device, Tensor};
            let (kr, kc) = (rows, 256);
            let values: Vec<f32> = (0..kr * kc)
                .map(|_| (lcg(&mut s) % 2001) as f32 / 1000.0 - 1.0)
                .collect();
            let t = Tensor::from_vec(values, (kr, kc), &Device::Cpu).unwrap();
            for dtype in [GgmlDType::Q4K, GgmlDType::Q6K] {
                let q = Arc::new(QTensor::quantize(&t, dtype).unwrap());
                matrices.push(PackedMatrix::from_k_quant(q, kr, kc).unwrap());
            }
        }
        for group in matrices.chunks(2) {
            let group: Vec<&PackedMatrix> = group.iter().collect();
            let cols = group[0].cols();
            let x: Vec<f32> = (0..n * cols)
                .map(|_| (lcg(&mut s) % 2001) as f32 / 1000.0 - 1.0)
                .collect();
            let batched = gemm_many(&group, &x, n);
            for j in 0..n {
                let alone = gemv_many(&group, &x[j * cols..(j + 1) * cols]);
                for (m, out) in alone.iter().enumerate() {
                    assert_eq!(
                        &batched[m][j * rows..(j + 1) * rows],
                        out.as_slice(),
                        "matrix {m} input {j}"
                    );
                }
            }
        }
    }

    /// The packed products equal the dequantized f32 products.
    #[test]
    fn kernels_match_dequantized_weights() {
        let (rows, cols) = (37, 192);
        let mut s = 7u64;
        let x: Vec<f32> = (0..cols)
            .map(|_| (lcg(&mut s) % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        // Q4_1 bytes and their exact values.
        let mut q41 = Vec::new();
        let mut dense41 = Vec::new();
        for _ in 0..rows * cols / 32 {
            let d = (lcg(&mut s) % 100 + 1) as f32 / 1000.0;
            let m = -((lcg(&mut s) % 100) as f32) / 1000.0;
            let (dh, mh) = (half::f16::from_f32(d), half::f16::from_f32(m));
            q41.extend_from_slice(&dh.to_le_bytes());
            q41.extend_from_slice(&mh.to_le_bytes());
            let levels: Vec<u8> = (0..32).map(|_| (lcg(&mut s) % 16) as u8).collect();
            for j in 0..16 {
                q41.push(levels[j] | (levels[j + 16] << 4));
            }
            dense41.extend(levels.iter().map(|&q| dh.to_f32() * q as f32 + mh.to_f32()));
        }
        let mut q80 = Vec::new();
        let mut dense80 = Vec::new();
        for _ in 0..rows * cols / 32 {
            let dh = half::f16::from_f32((lcg(&mut s) % 100 + 1) as f32 / 10000.0);
            q80.extend_from_slice(&dh.to_le_bytes());
            for _ in 0..32 {
                let q = (lcg(&mut s) % 255) as i32 - 127;
                q80.push(q as i8 as u8);
                dense80.push(dh.to_f32() * q as f32);
            }
        }
        let a = PackedMatrix::from_q4_1(&q41, rows, cols).unwrap();
        let b = PackedMatrix::from_q8_0(&q80, rows, cols).unwrap();
        let outs = gemv_many(&[&a, &b], &x);
        for (out, dense) in outs.iter().zip([&dense41, &dense80]) {
            for r in 0..rows {
                let exact: f32 = dense[r * cols..(r + 1) * cols]
                    .iter()
                    .zip(&x)
                    .map(|(w, x)| w * x)
                    .sum();
                let scale: f32 = dense[r * cols..(r + 1) * cols]
                    .iter()
                    .zip(&x)
                    .map(|(w, x)| (w * x).abs())
                    .sum();
                assert!(
                    (out[r] - exact).abs() <= 0.01 * scale + 1e-4,
                    "row {r}: {} vs {exact}",
                    out[r]
                );
            }
        }
        // The scalar fallback gives the same numbers as the SIMD path.
        let qx = QuantizedVector::new(&x);
        let mut simd = vec![0f32; rows];
        a.rows_dot(std::slice::from_ref(&qx), 0..rows, &mut simd);
        if let PackedMatrix::Q4_1 { nibbles, d, m, .. } = &a {
            let nb = cols / 32;
            for r in 0..rows {
                let (d, m) = (&d[r * nb..(r + 1) * nb], &m[r * nb..(r + 1) * nb]);
                let scalar =
                    scalar_q4_1_row(&nibbles[r * nb * 16..(r + 1) * nb * 16], d, &qx.q, &qx.d)
                        + m.iter().zip(&qx.sums).map(|(m, s)| m * s).sum::<f32>();
                assert!(
                    (simd[r] - scalar).abs() <= 1e-3 * scalar.abs().max(1.0),
                    "row {r}"
                );
            }
        }
    }
}
