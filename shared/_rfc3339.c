/* RFC 3339 date-times as epoch seconds, compiled: ingest's fast path (shared/rfc3339.py,
 * services/ingest/validation.py) reads one from every raw event, and pydantic-core's
 * datetime followed by datetime.timestamp() cost it about 1.5 us of its ~12 us an event
 * (bench/README.md, "Ingest's event times in C").
 *
 * epoch(text) answers with the double that datetime.timestamp() gives for pydantic's
 * datetime of `text`, or with None where it does not answer (the caller then asks
 * pydantic). It answers only for
 *
 *     YYYY-MM-DD(T|t| )hh:mm:ss[.f{1,6}](Z|z|(+|-)hh:mm)        (ASCII digits only)
 *
 * with a year 1970..2200, a day that exists in its month, hh <= 23, mm and ss <= 59 and an
 * offset's hh <= 23, mm <= 59: a subset of what pydantic takes, so None never hides a
 * value it would refuse (tests/unit/test_rfc3339.py checks both ways on generated texts).
 *
 * The same double: timestamp() divides the exact count of microseconds since the epoch by
 * 10^6 as Python's int / int does, which for two integers below 2^53 is one IEEE division
 * of their doubles. Microseconds to 2200 stay below 2^53 (7.3e15 < 9.0e15), so the division
 * here is that same one.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define YEAR_MIN 1970
#define YEAR_MAX 2200

/* n ASCII digits at s as *out; 0 when one is not a digit */
static int digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        unsigned c = (unsigned)(unsigned char)s[i] - '0';
        if (c > 9) return 0;
        v = v * 10 + (int)c;
    }
    *out = v;
    return 1;
}

static int days_in_month(int y, int m) {
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) return 29;
    return days[m - 1];
}

/* days from 1970-01-01 to y-m-d, proleptic Gregorian, for y >= 1 (H. Hinnant's
 * days_from_civil: years start in March, so the leap day ends one) */
static int64_t days_from_civil(int y, int m, int d) {
    y -= m <= 2;
    int64_t era = y / 400;
    int64_t yoe = y - era * 400;                             /* 0..399 */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* 0..365 */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;     /* 0..146096 */
    return era * 146097 + doe - 719468;
}

static PyObject *epoch(PyObject *self, PyObject *arg) {
    (void)self;
    /* (ASCII only: its UTF-8 is the string's own buffer, no copy is made and kept) */
    if (!PyUnicode_Check(arg) || !PyUnicode_IS_ASCII(arg)) Py_RETURN_NONE;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(arg, &n); /* NUL-terminated */
    if (s == NULL) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    /* from YYYY-MM-DDThh:mm:ssZ (20) to YYYY-MM-DDThh:mm:ss.ffffff+hh:mm (32) */
    if (n < 20 || n > 32) Py_RETURN_NONE;
    int year, month, day, hour, minute, second;
    if (!digits(s, 4, &year) || s[4] != '-' || !digits(s + 5, 2, &month) || s[7] != '-'
        || !digits(s + 8, 2, &day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        || !digits(s + 11, 2, &hour) || s[13] != ':' || !digits(s + 14, 2, &minute)
        || s[16] != ':' || !digits(s + 17, 2, &second))
        Py_RETURN_NONE;
    Py_ssize_t i = 19;
    int64_t micro = 0;
    if (s[i] == '.') {
        int k = 0;
        for (i++; i < n && (unsigned)(unsigned char)s[i] - '0' <= 9; i++, k++) {
            if (k == 6) Py_RETURN_NONE; /* finer than a microsecond: pydantic's to round */
            micro = micro * 10 + (s[i] - '0');
        }
        if (k == 0) Py_RETURN_NONE;
        for (; k < 6; k++) micro *= 10;
    }
    int offset = 0;
    if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == n) {
        offset = 0;
    } else if ((s[i] == '+' || s[i] == '-') && i + 6 == n) {
        int oh, om;
        if (!digits(s + i + 1, 2, &oh) || s[i + 3] != ':' || !digits(s + i + 4, 2, &om)
            || oh > 23 || om > 59)
            Py_RETURN_NONE;
        offset = (oh * 60 + om) * 60 * (s[i] == '-' ? -1 : 1);
    } else {
        Py_RETURN_NONE;
    }
    if (year < YEAR_MIN || year > YEAR_MAX || month < 1 || month > 12 || day < 1
        || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 59)
        Py_RETURN_NONE;
    int64_t seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60
                      + second - offset;
    return PyFloat_FromDouble((double)(seconds * 1000000 + micro) / 1e6);
}

static PyMethodDef methods[] = {
    {"epoch", epoch, METH_O,
     "epoch(text, /): the RFC 3339 date-time `text` as seconds since the epoch, the double\n"
     "datetime.timestamp() gives for pydantic's datetime of it; None where this does not\n"
     "answer (years outside 1970..2200, more than 6 fraction digits, not the grammar)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rfc3339",
    "RFC 3339 date-times as epoch seconds, compiled (see _rfc3339.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rfc3339(void) { return PyModule_Create(&module); }
