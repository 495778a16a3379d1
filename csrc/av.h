/* Plain Lua values <-> DynamoDB AttributeValues, and the number arithmetic that makes
 * "2.50" and "2.5" the same value without ever rounding a digit. */
#ifndef DDB_AV_H
#define DDB_AV_H

#include <stddef.h>
#include "compat.h"
#include "visibility.h"
#include "jsonread.h"
#include "json.h"

DDB_HIDDEN_BEGIN

#define AV_NUMBER_MT "ddb{number}"
#define AV_BINARY_MT "ddb{binary}"
#define AV_NULL_MT "ddb{null}"
#define AV_SS_MT "ddb{string_set}"
#define AV_NS_MT "ddb{number_set}"
#define AV_BS_MT "ddb{binary_set}"
#define AV_NULL_KEY JSON_NULL_KEY

#define AV_MAX_DIGITS 38
#define AV_DIGIT_BUF 64

/* value = 0.d[0]d[1]... x 10^exp, no leading or trailing zeros in d; zero has nd == 0. */
typedef struct av_dec {
    int neg;
    int nd;
    long exp;
    int overflow;      /* more significant digits than fit in d */
    char d[AV_DIGIT_BUF];
} av_dec;

/* Parses decimal text ("-1.50e3"); returns 0, or -1 when it is not a number. */
int ddb_av_dec_parse(const char *s, size_t n, av_dec *out);
/* NULL when valid for DynamoDB, else the reason. */
const char *ddb_av_dec_check(const av_dec *x);
/* Writes the canonical text DynamoDB would store; returns its length. out needs 200 bytes. */
size_t ddb_av_dec_format(const av_dec *x, char *out, size_t outlen);
int ddb_av_dec_equal(const av_dec *a, const av_dec *b);

/* Creates the metatables and the null sentinel; call once per state. */
void ddb_av_register(lua_State *L);

/* Lua functions. */
/* (value) -> AttributeValue table; raises on bad input */
int ddb_av_lua_marshal(lua_State *L);
int ddb_av_lua_marshal_item(lua_State *L);  /* (map) -> { attr = AV } */
int ddb_av_lua_unmarshal(lua_State *L);     /* (AV) -> value */
int ddb_av_lua_unmarshal_item(lua_State *L);
/* Pushes the plain item for an object of AttributeValues read by jsonread.c (what
 * unmarshal_item makes of it, without the tables in between); raises on a malformed value.
 * depth: 1 for an item. */
void ddb_av_push_plain_item(lua_State *L, const ddb_jnode *object, int depth);

/* Pushes the number text s[0..n): a Lua number when it holds the exact value, else a
 * ddb.number keeping the text; raises when it is not a number. */
void ddb_av_push_number_text(lua_State *L, const char *s, size_t n);

/* ddb_av_push_number_text for a number a person wrote in JSON at byte offset at: raises
 * "at byte N: <text> is not a number DynamoDB can store (<why>)" when it is not one (a
 * json_decode_opts number function). */
void ddb_av_push_exact_number(lua_State *L, const char *s, size_t n, uint32_t at);
/* (AV, AV) -> boolean, numbers by value, sets unordered */
int ddb_av_lua_equal(lua_State *L);
int ddb_av_lua_item_size(lua_State *L);     /* ({attr = AV}) -> bytes as DynamoDB counts them */
int ddb_av_lua_plan_diff(lua_State *L);     /* (old, item, skip, override, keep_old) -> sets,
                                           avs, removes, size: what a write sends */
int ddb_av_lua_key(lua_State *L);          /* (key, hash[, range]) -> AVs | false */
int ddb_av_lua_get_body(lua_State *L);     /* (table, key) -> the JSON body of the engine's
                                           GetItem */
int ddb_av_lua_update_plan(lua_State *L);  /* (table, key, names, old, item, version, ...)
                                           -> the JSON body of an update's UpdateItem */
int ddb_av_lua_number_canonical(lua_State *L); /* (text|number) -> canonical text or nil, reason */

/* An item doc (doc.c): an answer's nodes kept in one userdata, the named member's
 * attributes readable as doc[name] (an AttributeValue made on demand) and comparable in C. */
#define AV_DOC_MT "ddb{item}"
typedef struct av_doc av_doc;
/* Reads the answer s[0..n) and pushes its doc (0), or pushes nothing and returns -1 when it is
 * not JSON; raises when memory runs out. member: the object member the doc is about. */
int ddb_av_doc_read(lua_State *L, const char *s, size_t n, const char *member, int max_depth);
av_doc *ddb_av_doc_test(lua_State *L, int idx);       /* the doc at idx, or NULL */
const ddb_jnode *ddb_av_doc_nodes(const av_doc *doc);  /* the whole answer's nodes */
/* Pushes the member's value for a decoded answer (1): the doc at idx itself when the member
 * is a non-empty object without null or repeated names, else its AttributeValue tables; 0
 * (nothing pushed) when the answer has no such member. */
int ddb_av_doc_push_member(lua_State *L, int idx);
const ddb_jnode *ddb_av_doc_item(const av_doc *doc);   /* the member's node, or NULL */
size_t ddb_av_doc_count(const av_doc *doc);            /* the item's attributes */
const ddb_jnode *ddb_av_doc_attr(const av_doc *doc, size_t i);  /* i-th by name */
const ddb_jnode *ddb_av_doc_find(const av_doc *doc, const char *k, size_t n);
/* The last member named name of the object node obj (skip_null: the last that is not null,
 * as the tables made from obj hold it), or NULL; NULL when obj is not an object. */
const ddb_jnode *ddb_av_last_member(const ddb_jnode *obj, const char *name, int skip_null);
/* The place of the attribute named k[0..n) among ddb_av_doc_attr's, or the count when there
 * is none. */
size_t ddb_av_doc_find_at(const av_doc *doc, const char *k, size_t n);
/* 1 when every attribute has a name of its own and no member is null (the doc stands for
 * its item; ddb_av_doc_push_member). */
int ddb_av_doc_regular(const av_doc *doc);
int ddb_av_lua_item_av(lua_State *L);       /* (doc|AV map) -> AV map */
void ddb_av_doc_register(lua_State *L);

DDB_HIDDEN_END

#endif
