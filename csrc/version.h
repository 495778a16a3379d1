/* Versions of ddb.optimistic: integer DynamoDB numbers (up to 38 digits) read and stepped
 * exactly, so that no version ever rounds, wraps or loses a digit on any Lua runtime. */
#ifndef DDB_VERSION_H
#define DDB_VERSION_H

#include <stddef.h>
#include "compat.h"
#include "visibility.h"

DDB_HIDDEN_BEGIN

#define VERSION_TEXT_MAX 48   /* a sign, 38 digits and room to spare */

/* s[0..n) as canonical version text in out (VERSION_TEXT_MAX bytes): NULL, or why it is not
 * a version */
const char *ddb_version_parse(const char *s, size_t n, char *out);
int ddb_version_lua_parse(lua_State *L);   /* (text) -> canonical | nil, reason */
int ddb_version_lua_add(lua_State *L);     /* (text, step) -> canonical | nil, reason */

DDB_HIDDEN_END

#endif
