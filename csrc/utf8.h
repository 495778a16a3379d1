/* UTF-8 validity: one check for the encoder, the reader and the AttributeValue layer. */
#ifndef DDB_UTF8_H
#define DDB_UTF8_H

#include <stddef.h>
#include "visibility.h"

DDB_HIDDEN_BEGIN

/* Returns 1 when s[0..n) is valid UTF-8 without surrogates or overlong forms. */
int ddb_utf8_valid(const char *s, size_t n);

/* The length of the one character s[0..n) starts with (n >= 1): 1 to 4, or 0 when the bytes
 * there are not valid UTF-8 (cut short, overlong, a surrogate, beyond U+10FFFF). */
size_t ddb_utf8_seq(const unsigned char *s, size_t n);

DDB_HIDDEN_END

#endif
