/* Versions of ddb.optimistic: integer DynamoDB numbers (up to 38 digits) read and stepped
 * exactly, so that no version ever rounds, wraps or loses a digit on any Lua runtime. */
#ifndef DDB_VERSION_H
#define DDB_VERSION_H

#include <stddef.h>
#include "compat.h"

#define VERSION_TEXT_MAX 48   /* a sign, 38 digits and room to spare */

/* Canonical text of an integer number into out (VERSION_TEXT_MAX bytes); NULL on success,
 * else why it is not a version. */
const char *version_canonical(const char *s, size_t n, char *out);
/* a + b for canonical integer texts within 38 digits; NULL on success, else why not. */
const char *version_add(const char *a, const char *b, char *out);

int version_lua_parse(lua_State *L);   /* (text) -> canonical | nil, reason */
int version_lua_add(lua_State *L);     /* (text, step) -> canonical | nil, reason */

#endif
