/* Doubles to text and back, the same in every locale (snprintf's %g and strtod follow
 * LC_NUMERIC, and a host may set it to a locale with a decimal comma). */
#include "number.h"

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The number text s[0..n) as the nearest double, whatever the host's locale says a decimal
 * point is (strtod follows LC_NUMERIC). */
double ddb_number_read(const char *s, size_t n)
{
    char small[64], *copy = small;
    const char *point;
    size_t i = n > 0 && s[0] == '-', pl, k, o;
    double d;
    if (n - i <= 18 && n > i) {
        /* whole numbers of up to 18 digits: exact in 64 bits, rounded once to a double */
        long long v = 0;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            v = v * 10 + (s[i] - '0');
        if (i == n)
            return s[0] == '-' ? -(double)v : (double)v;
        /* digits '.' digits, 15 digits at most: v / 10^k, rounded once */
        if (s[i] == '.' && n - (s[0] == '-') <= 16 && i + 1 < n) {
            size_t point_at = i++;
            for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
                v = v * 10 + (s[i] - '0');
            if (i == n &&
                ddb_number_exact((unsigned long long)v, -(long)(n - point_at - 1), &d) == 0)
                return s[0] == '-' ? -d : d;
        }
    }
    point = localeconv()->decimal_point;
    pl = strlen(point);
    if (n + pl >= sizeof small && (copy = malloc(n + pl + 1)) == NULL)
        return strtod(s, NULL);   /* out of memory: s ends at a delimiter in every caller */
    for (k = o = 0; k < n; k++) {
        if (s[k] == '.' && pl > 0) {
            memcpy(copy + o, point, pl);
            o += pl;
        } else {
            copy[o++] = s[k];
        }
    }
    copy[o] = '\0';
    d = strtod(copy, NULL);
    if (copy != small)
        free(copy);
    return d;
}

int ddb_number_exact(unsigned long long mant, long k, double *out)
{
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
    /* exact powers of ten as doubles (10^22 is the last one a double holds exactly): with
     * mant exact too, one multiplication or division rounds once, as strtod does */
    static const double pow10[] = {
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
    };
    if (mant > (1ULL << 53) || k < -22 || k > 22)
        return -1;
    *out = k >= 0 ? (double)mant * pow10[k] : (double)mant / pow10[-k];
    return 0;
#else
    (void)mant;
    (void)k;
    (void)out;
    return -1;
#endif
}

/* snprintf's %g writes LC_NUMERIC's decimal point ("1,5" under de_DE): put back the '.' that
 * JSON and DynamoDB read. */
static void c_decimal_point(char *s)
{
    const char *point = localeconv()->decimal_point;
    size_t pl = strlen(point);
    char *at;
    if ((pl == 1 && point[0] == '.') || pl == 0 || (at = strstr(s, point)) == NULL)
        return;
    *at = '.';
    memmove(at + 1, at + pl, strlen(at + pl) + 1);
}

/* Shortest text that reads back as exactly d (15, 16 or 17 significant digits), in any
 * locale. */
size_t ddb_number_write(double d, char *out, size_t n)
{
    int p;
    if (d == floor(d) && fabs(d) < 1e15) {
        /* a whole number: as "%.15g" writes it, with no format; -0 keeps its sign */
        if (d == 0 && signbit(d)) {
            memcpy(out, "-0", 3);
            return 2;
        }
        return ddb_number_write_int((long long)d, out);
    }
    for (p = 15; p <= 17; p++) {
        snprintf(out, n, "%.*g", p, d);
        c_decimal_point(out);
        if (ddb_number_read(out, strlen(out)) == d)
            break;
    }
    return strlen(out);
}

size_t ddb_number_write_int(long long v, char *out)
{
    char digits[24];
    /* the magnitude as unsigned, so that LLONG_MIN has one too */
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    size_t nd = 0, k = 0;
    do {
        digits[nd++] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (v < 0)
        out[k++] = '-';
    while (nd > 0)
        out[k++] = digits[--nd];
    out[k] = '\0';
    return k;
}
