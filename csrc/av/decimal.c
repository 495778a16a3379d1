/* Exact decimal numbers of up to 38 significant digits, as DynamoDB stores them: parsing,
 * checking, canonical text and comparison, without ever rounding a digit. */
#include "internal.h"
#include "../number.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- exact decimal numbers ---- */

int ddb_av_dec_parse(const char *s, size_t n, av_dec *out)
{
    size_t i = 0;
    int seen_digit = 0, started = 0;
    long int_count = 0, frac_zeros = 0, e = 0;

    memset(out, 0, sizeof *out);
    if (i < n && (s[i] == '-' || s[i] == '+'))
        out->neg = s[i++] == '-';
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        seen_digit = 1;
        if (!started && s[i] == '0')
            continue;
        started = 1;
        int_count++;
        if (out->nd < AV_DIGIT_BUF)
            out->d[out->nd++] = s[i];
        else if (s[i] != '0')
            out->overflow = 1;
    }
    if (i < n && s[i] == '.') {
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            seen_digit = 1;
            if (!started && s[i] == '0') {
                frac_zeros++;
                continue;
            }
            started = 1;
            if (out->nd < AV_DIGIT_BUF)
                out->d[out->nd++] = s[i];
            else if (s[i] != '0')
                out->overflow = 1;
        }
    }
    if (!seen_digit)
        return -1;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        int eneg = 0, edigit = 0;
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+'))
            eneg = s[i++] == '-';
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            edigit = 1;
            if (e < 100000)
                e = e * 10 + (s[i] - '0');
        }
        if (!edigit)
            return -1;
        if (eneg)
            e = -e;
    }
    if (i != n)
        return -1;
    while (out->nd > 0 && out->d[out->nd - 1] == '0')
        out->nd--;
    if (out->nd == 0) {
        out->neg = 0;
        out->exp = 0;
        return 0;
    }
    out->exp = (int_count > 0 ? int_count : -frac_zeros) + e;
    return 0;
}

const char *ddb_av_dec_check(const av_dec *x)
{
    if (x->overflow || x->nd > AV_MAX_DIGITS)
        return "number has more than 38 significant digits (DynamoDB's precision)";
    if (x->nd > 0 && x->exp > 126)
        return "number is larger than DynamoDB's maximum (9.9999999999999999999999999999999999999E+125)";
    if (x->nd > 0 && x->exp < -129)
        return "number is smaller than DynamoDB's minimum magnitude (1E-130)";
    return NULL;
}

size_t ddb_av_dec_format(const av_dec *x, char *out, size_t outlen)
{
    char tmp[AV_DIGIT_BUF + 200];
    size_t k = 0;
    long i;
    if (x->nd == 0) {
        tmp[k++] = '0';
        goto done;
    }
    if (x->neg)
        tmp[k++] = '-';
    if (x->exp >= x->nd && x->exp <= 40) {
        /* an integer: digits then zeros */
        memcpy(tmp + k, x->d, x->nd);
        k += x->nd;
        for (i = x->nd; i < x->exp; i++)
            tmp[k++] = '0';
    } else if (x->exp > 0 && x->exp < x->nd) {
        memcpy(tmp + k, x->d, x->exp);
        k += x->exp;
        tmp[k++] = '.';
        memcpy(tmp + k, x->d + x->exp, x->nd - x->exp);
        k += x->nd - x->exp;
    } else if (x->exp <= 0 && x->exp > -20) {
        tmp[k++] = '0';
        tmp[k++] = '.';
        for (i = 0; i < -x->exp; i++)
            tmp[k++] = '0';
        memcpy(tmp + k, x->d, x->nd);
        k += x->nd;
    } else {
        tmp[k++] = x->d[0];
        if (x->nd > 1) {
            tmp[k++] = '.';
            memcpy(tmp + k, x->d + 1, x->nd - 1);
            k += x->nd - 1;
        }
        k += snprintf(tmp + k, sizeof tmp - k, "E%+ld", x->exp - 1);
    }
done:
    /* as snprintf(out, outlen, "%s", tmp) would, without parsing a format per number */
    if (outlen > 0) {
        size_t m = k < outlen - 1 ? k : outlen - 1;
        memcpy(out, tmp, m);
        out[m] = '\0';
    }
    return k;
}

int ddb_av_dec_equal(const av_dec *a, const av_dec *b)
{
    return a->neg == b->neg && a->nd == b->nd && a->exp == b->exp && a->overflow == b->overflow &&
           memcmp(a->d, b->d, a->nd) == 0;
}

void ddb_push_dec(lua_State *L, const av_dec *x)
{
    char out[AV_DIGIT_BUF + 200];
    size_t n = ddb_av_dec_format(x, out, sizeof out);
    lua_pushlstring(L, out, n);
}
