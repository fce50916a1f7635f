/* The exact zero-state ARL of the integer-lattice CUSUM, compiled, at every decision
 * interval 1..n at once: shared/stats/cusum.py's _lattice_arl reads curve()'s output when
 * this module is built, and solves a banded LU through LAPACK for each limit when it is not
 * (the results agree; this one is the more accurate where the ARL is long).
 *
 * The chart: S = max(0, S + up) on an error (probability p), max(0, S - down) on a correct
 * verdict, a signal at S >= limit. ARL = L_0 of (I - Q) L = 1 over the states 0..limit-1
 * (Brook & Evans 1972). A design on an estimated baseline asks it some hundreds of times
 * (services/scorer/cusum.py), and LAPACK's banded LU spends ~0.2 us of call overhead per
 * column on these narrow bands: 80-300 us a solve where the arithmetic is a few us.
 *
 * Two passes that sum non-negative terms (the climb's window also drops its oldest term, at
 * most 1/down of it), so that nothing cancels and the ARL keeps its relative accuracy, about
 * n x machine epsilon, even where the chain almost never signals (LAPACK's banded LU with
 * pivoting returned negative ARLs of -1e17 for p = 0.001, up 1, down 40):
 *
 * up == 1, the climb. A chain that moves up one state at a time passes every state on its
 *   way to the limit, so ARL = tau_0 + ... + tau_(limit-1), with tau_k the expected
 *   verdicts from first reaching k to first reaching k + 1: from k an error (p) reaches
 *   k + 1; a correct verdict falls to j = max(0, k - down), whence the chain climbs back
 *   through tau_j .. tau_k, so tau_k = (1 + (1 - p) (tau_j + ... + tau_(k-1))) / p, a
 *   window sum of the last `down` terms. ARL(k + 1) is the running total. O(n).
 *
 * otherwise, elimination without pivoting. A = I - Q is an M-matrix: Gaussian elimination
 *   without pivoting runs with positive pivots, and L^-1, U^-1 are non-negative. With
 *   y = L^-1 1 and w = U^-T e_0, ARL = sum_(i < limit) w_i y_i, every term >= 0. The matrix
 *   for a limit is the leading section of one infinite matrix, and the factors of a leading
 *   section (without pivoting) are the leading sections of its factors, so the running sum
 *   after column c is ARL(c + 1): one elimination gives every limit. Each row of
 *   the infinite A sums to 0 (1 - p - q) and elimination keeps it so, so a pivot is computed
 *   as minus the sum of its row's entries right of the diagonal (Grassmann, Taksar & Heyman
 *   1985), not as a difference that cancels when the chain rarely leaves 0. The rows in play
 *   live in a ring of down + 1 rows of down + up + 1 values. O(n (up down + up + down)).
 *
 * Brook, D. & Evans, D. A. (1972). Biometrika 59, 539-549.
 * Grassmann, W. K., Taksar, M. I. & Heyman, D. P. (1985). Operations Research 33, 1107-1116.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

/* `down` here is the window's length: min(down, n), the same terms (see curve) */
static void climb(long down, double p, Py_ssize_t n, double *out, double *window) {
    double q = 1.0 - p, sum = 0.0, total = 0.0;
    long slot = 0;
    memset(window, 0, (size_t)down * sizeof(double));
    for (Py_ssize_t k = 0; k < n; k++) {
        double tau = (1.0 + q * sum) / p;
        total += tau;
        out[k] = total;
        sum = (sum - window[slot]) + tau; /* drops tau_(k - down), takes tau_k */
        window[slot] = tau;
        if (++slot == down) slot = 0;
    }
}

static void eliminate(long up, long down, double p, Py_ssize_t n, double *out, double *scratch) {
    long width = down + up + 1, ring = down + 1, cols = up + 1;
    double q = 1.0 - p, total = 0.0;
    double *rows = scratch;             /* ring x width: row i holds columns i - down .. i + up */
    double *acc = rows + ring * width;  /* e_0 - sum_j U[j, c] w_j for columns c .. c + up */
    double *ys = acc + cols;            /* y of rows c .. c + down */
    memset(rows, 0, (size_t)(ring * width) * sizeof(double));
    for (long i = 0; i < ring; i++) { /* A[i, i + up] = -p, A[i, max(i - down, 0)] -= q */
        rows[i * width + down + up] = -p;
        rows[i * width + (down - i > 0 ? down - i : 0)] -= q;
        ys[i] = 1.0;
    }
    memset(acc, 0, (size_t)cols * sizeof(double));
    acc[0] = 1.0;
    for (Py_ssize_t c = 0; c < n; c++) {
        long r = (long)(c % ring);
        double *restrict row = rows + r * width;
        /* (four sums: one would wait on each add; the terms have one sign, so any order is
         * as accurate) */
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
        long k = down + 1;
        for (; k + 3 < width; k += 4) {
            s0 += row[k];
            s1 += row[k + 1];
            s2 += row[k + 2];
            s3 += row[k + 3];
        }
        for (; k < width; k++) s0 += row[k];
        double piv = -((s0 + s1) + (s2 + s3));
        long at = (long)(c % cols);
        double wc = acc[at] / piv;
        acc[at] = 0.0;
        total += wc * ys[r];
        out[c] = total;
        /* acc[(c + a) % cols] -= U[c, c + a] wc, a = 1..up, without a division each */
        for (long a = 1, i = at + 1; a <= up; a++, i++)
            acc[i < cols ? i : i - cols] -= row[down + a] * wc;
        for (long a = 1; a <= down; a++) { /* eliminate column c from rows c + 1 .. c + down */
            long ri = r + a < ring ? r + a : r + a - ring;
            double *restrict below = rows + ri * width;
            double mult = below[down - a] / piv;
            below[down - a] = 0.0;
            ys[ri] -= mult * ys[r];
            for (long k = 1; k <= up; k++) below[down - a + k] -= mult * row[down + k];
        }
        /* the row leaves the ring; row c + ring (> down: its down step is not reflected)
         * takes its place (left of the diagonal, the row is all 0 by now: eliminated) */
        for (long k = down; k < width; k++) row[k] = 0.0;
        row[down + up] = -p;
        row[0] = -q;
        ys[r] = 1.0;
    }
}

#define STEP_MAX (1L << 31) /* up and down beyond this: refused before any arithmetic */
#define BAND_MAX (1L << 20) /* (down + 1)(down + up + 1) doubles of the elimination's ring */

static PyObject *refuse(Py_buffer *buf, const char *why) {
    if (buf != NULL) PyBuffer_Release(buf);
    PyErr_SetString(PyExc_ValueError, why);
    return NULL;
}

static PyObject *curve(PyObject *self, PyObject *args) {
    long up, down;
    double p;
    PyObject *target;
    Py_buffer buf;
    (void)self;
    if (!PyArg_ParseTuple(args, "lldO:curve", &up, &down, &p, &target)) return NULL;
    if (up < 1 || down < 1) return refuse(NULL, "curve: up and down must be >= 1");
    if (up > STEP_MAX || down > STEP_MAX)
        return refuse(NULL, "curve: up and down must be at most 2^31");
    if (!(p > 0.0 && p <= 1.0)) return refuse(NULL, "curve: p must be in (0, 1]");
    if (up > 1 && (down + 1) * (down + up + 1) > BAND_MAX)
        return refuse(NULL, "curve: the band is too wide: (down + 1)(down + up + 1) > 2^20");
    if (PyObject_GetBuffer(target, &buf, PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0)
        return NULL; /* (TypeError or BufferError: not a writable contiguous buffer) */
    if (buf.itemsize != (Py_ssize_t)sizeof(double) || buf.format == NULL
        || strcmp(buf.format, "d") != 0)
        return refuse(&buf, "curve: out must be a buffer of doubles (format 'd')");
    Py_ssize_t n = buf.len / (Py_ssize_t)sizeof(double);
    if (n < 1) return refuse(&buf, "curve: out must hold n >= 1 doubles");
    /* the climb keeps the last min(down, n) terms (a term older than n never leaves it) */
    size_t size = up == 1 ? (size_t)(down < n ? down : n)
                          : (size_t)((down + 1) * (down + up + 1) + up + 1 + down + 1);
    double *scratch = malloc(size * sizeof(double));
    if (scratch == NULL) {
        PyBuffer_Release(&buf);
        return PyErr_NoMemory();
    }
    double *out = (double *)buf.buf;
    Py_BEGIN_ALLOW_THREADS
    if (up == 1) climb((long)size, p, n, out, scratch);
    else eliminate(up, down, p, n, out, scratch);
    Py_END_ALLOW_THREADS
    free(scratch);
    PyBuffer_Release(&buf);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"curve", curve, METH_VARARGS,
     "curve(up, down, p, out): out[L - 1] = the exact zero-state ARL of the lattice CUSUM at\n"
     "limit L, for L = 1..len(out) (out: a writable contiguous buffer of doubles, format\n"
     "'d'; inf or nan where it overflows). up, down in 1..2^31, p in (0, 1]; (down + 1)(down + up + 1)\n"
     "at most 2^20 unless up = 1."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_lattice",
    "The exact ARL of the integer-lattice CUSUM, compiled (see _lattice.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__lattice(void) { return PyModule_Create(&module); }
