/* Lua tables <-> JSON text for the DynamoDB wire shapes. Encoding writes text directly;
 * decoding goes through cJSON. */
#ifndef DDB_JSON_H
#define DDB_JSON_H

#include <stddef.h>
#include "compat.h"
#include "buf.h"

/* Registry names of the marker metatables shared with the AttributeValue layer. */
#define JSON_LIST_MT "ddb{list}"
#define JSON_MAP_MT "ddb{map}"

/* Returns 1 when s[0..n) is valid UTF-8 without surrogates or overlong forms. */
int json_utf8_valid(const char *s, size_t n);

/* Appends the JSON string literal for s; fails (-1) on allocation failure only. */
int json_add_string(buf *out, const char *s, size_t n);

/* Encodes the value at idx. On a bad value returns -1 with a message in err. */
int json_encode(lua_State *L, int idx, buf *out, char *err, size_t errlen);

/* Pushes the decoded value, or nil and a message (returns 0 then). Arrays get the list
 * metatable so that an empty list encodes back as []. */
int json_decode(lua_State *L, const char *s, size_t n);

/* 1 when the value at idx has the metatable registered under name. */
int json_has_mt(lua_State *L, int idx, const char *name);

/* Classifies a table: 1 list (array), 0 map; -1 with a message when neither. */
int json_table_kind(lua_State *L, int idx, size_t *len, char *err, size_t errlen);

#endif
