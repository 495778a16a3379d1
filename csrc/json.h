/* Lua tables <-> JSON text for the DynamoDB wire shapes. Encoding writes text directly;
 * decoding walks the nodes jsonread.c reads. */
#ifndef DDB_JSON_H
#define DDB_JSON_H

#include <stddef.h>
#include "compat.h"
#include "buf.h"
#include "jsonread.h"
#include "visibility.h"

DDB_HIDDEN_BEGIN

/* Registry names of the marker metatables shared with the AttributeValue layer. */
#define JSON_LIST_MT "ddb{list}"
#define JSON_MAP_MT "ddb{map}"
/* Registry key of the null sentinel (ddb.null) exact decoding gives for JSON null. */
#define JSON_NULL_KEY "ddb.null"

/* Encodes the value at idx. On a bad value returns -1 with a message in err. */
int ddb_json_encode(lua_State *L, int idx, buf *out, char *err, size_t errlen);
/* Appends s[0..n) as a JSON string literal; -1 with err for text this module cannot send
 * (a NUL byte, invalid UTF-8) or out of memory. */
int ddb_json_add_string(buf *out, const char *s, size_t n, char *err, size_t errlen);

/* Pushes the decoded value, or nil and a message (returns 0 then): "not valid JSON at byte
 * N: expected ..., found ..." for text that is not JSON. Arrays get the list metatable so that
 * an empty list encodes back as []; nulls are left out. */
int ddb_json_decode(lua_State *L, const char *s, size_t n);

/* A member of the top-level object read by a function of the caller's (given its node; it
 * pushes one value or raises, which fails the decode with its message). */
typedef void (*json_push_fn)(lua_State *L, const ddb_jnode *node);

typedef struct json_decode_opts {
    const char *key;     /* the top-level member handed to fn, or NULL */
    json_push_fn fn;
    int exact;           /* null as ddb.null (JSON_NULL_KEY), a member given twice refused:
                            how a person's JSON is read */
    int max_depth;       /* levels of arrays and objects; 0: DDB_JSON_MAX_DEPTH */
    const char *also;    /* when set, key is decoded as usual and fn's value of it is stored
                            under this name too (left out when fn raises) */
    /* when set, pushes each number (text s[0..n) at byte offset at) or raises; else a Lua
       integer or float */
    void (*number)(lua_State *L, const char *s, size_t n, uint32_t at);
    int skip;            /* with also: key itself is left out, only fn's value is stored */
} json_decode_opts;

int ddb_json_decode_opts(lua_State *L, const char *s, size_t n, const json_decode_opts *o);
/* The push half of ddb_json_decode_opts, for nodes already read (and kept) by the caller:
 * nodes[0] is the document's value. */
int ddb_json_push_doc(lua_State *L, const ddb_jnode *nodes, const json_decode_opts *o);
/* Pushes the value of one node as ddb_json_decode would (null members left out); raises. */
void ddb_json_push_node(lua_State *L, const ddb_jnode *j);

/* 1 when the value at idx has the metatable registered under name. */
int ddb_json_has_mt(lua_State *L, int idx, const char *name);

/* Classifies a table: 1 list (array), 0 map; -1 with a message when neither. */
int ddb_json_table_kind(lua_State *L, int idx, size_t *len, char *err, size_t errlen);

/* The same for a table whose markers are known (marked_list: it has ddb.list's). */
int ddb_json_table_shape(lua_State *L, int idx, int marked_list, size_t *len, char *err,
                         size_t errlen);

/* Why the key at idx (not a string) cannot be in the map being written: as
 * ddb_json_table_kind would say it, or, in a table marked as a map (marked_map), its type. */
void ddb_json_key_error(lua_State *L, int idx, int marked_map, char *err, size_t errlen);

DDB_HIDDEN_END

#endif
