/* Doubles to text and back with '.' for the decimal point whatever the locale: JSON numbers,
 * DynamoDB N values. */
#ifndef DDB_NUMBER_H
#define DDB_NUMBER_H

#include <stddef.h>
#include "visibility.h"

DDB_HIDDEN_BEGIN

/* The number text s[0..n) (JSON's or DynamoDB's grammar) as the nearest double. */
double ddb_number_read(const char *s, size_t n);

/* Shortest text that reads back as exactly d (15, 16 or 17 significant digits), NUL-
 * terminated; returns its length. n: at least 32. */
size_t ddb_number_write(double d, char *out, size_t n);

/* mant * 10^k with one rounding, the double strtod reads for that decimal, into *out: 0; -1
 * when one rounding cannot be had (mant beyond 2^53, k beyond +-22, or excess precision). */
int ddb_number_exact(unsigned long long mant, long k, double *out);

/* v in decimal, as printf's "%lld" writes it, NUL-terminated; returns its length. out: at
 * least 21 bytes. */
size_t ddb_number_write_int(long long v, char *out);

DDB_HIDDEN_END

#endif
