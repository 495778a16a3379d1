/* UTF-8 validity: one check for the encoder, the reader and the AttributeValue layer. */
#ifndef DDB_UTF8_H
#define DDB_UTF8_H

#include <stddef.h>
#include "visibility.h"

DDB_HIDDEN_BEGIN

/* Returns 1 when s[0..n) is valid UTF-8 without surrogates or overlong forms. */
int ddb_utf8_valid(const char *s, size_t n);

DDB_HIDDEN_END

#endif
