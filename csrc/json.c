/* JSON for the DynamoDB protocol: a direct encoder from Lua values, and the decoder that
 * turns what jsonread.c read into Lua values. */
#include "json.h"
#include "utf8.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "number.h"

/* Levels of arrays and objects, counting the outermost. DynamoDB nests attributes 32 deep and
 * each level costs two here ({"M": {...}}), inside requests that wrap items 5 levels deep
 * (TransactItems); the bound also stops cyclic tables. */
#define JSON_MAX_DEPTH 128

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Whether none of the 8 bytes of w needs a second look when written in a JSON string: none
 * below 0x20, none at or above 0x80, no '"', no '\\'. (v - ONES) & ~v & HIGHS is nonzero
 * exactly when some byte of v is 0; w - ONES * 0x20 the same for bytes below 0x20. */
static int plain8(uint64_t w)
{
    uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\');
    return ((((w - ONES * 0x20) & ~w) | ((q - ONES) & ~q) | ((b - ONES) & ~b) | w) & HIGHS) == 0;
}

enum { TEXT_OK = 0, TEXT_NOMEM = -1, TEXT_NUL = 1, TEXT_NOT_UTF8 = 2 };

/* Appends s[0..n) as a JSON string literal, in one pass that also checks it is text this module
 * can carry: TEXT_OK, TEXT_NOMEM, TEXT_NUL (a NUL byte anywhere, even after invalid UTF-8)
 * or TEXT_NOT_UTF8; on failure the buffer is left as it was. The bytes are written as they are
 * read, into room reserved for the literal without escapes; an escape reserves more. */
static int json_add_text(buf *out, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    char *d;
    if (n > ((size_t)-1) / 2 || buf_room(out, n + 2))
        return TEXT_NOMEM;
    d = out->data + out->len;
    *d++ = '"';
    while (i < n) {
        unsigned c;
        size_t len;
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (plain8(w)) {
                memcpy(d, &w, 8);
                d += 8;
                i += 8;
                continue;
            }
        }
        c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *d++ = (char)c;
            i++;
            continue;
        }
        if (c >= 0x80) {
            len = ddb_utf8_seq(s + i, n - i);
            if (len == 0)
                return memchr(s, '\0', n) != NULL ? TEXT_NUL : TEXT_NOT_UTF8;
            memcpy(d, s + i, len);
            d += len;
            i += len;
            continue;
        }
        if (c == 0)
            return TEXT_NUL;
        /* up to 6 bytes for this one, then the rest and the closing quote as reserved */
        len = (size_t)(d - out->data);
        if (buf_room(out, len - out->len + 6 + (n - i - 1) + 1))
            return TEXT_NOMEM;
        d = out->data + len;
        *d++ = '\\';
        switch (c) {
        case '"': *d++ = '"'; break;
        case '\\': *d++ = '\\'; break;
        case '\n': *d++ = 'n'; break;
        case '\r': *d++ = 'r'; break;
        case '\t': *d++ = 't'; break;
        case '\b': *d++ = 'b'; break;
        case '\f': *d++ = 'f'; break;
        default:
            *d++ = 'u'; *d++ = '0'; *d++ = '0';
            *d++ = hex[c >> 4]; *d++ = hex[c & 15];
        }
        i++;
    }
    *d++ = '"';
    out->len = (size_t)(d - out->data);
    return TEXT_OK;
}

int ddb_json_has_mt(lua_State *L, int idx, const char *name)
{
    int r;
    if (!lua_getmetatable(L, idx))
        return 0;
    luaL_getmetatable(L, name);
    r = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return r;
}

int ddb_json_table_shape(lua_State *L, int idx, int marked_list, size_t *len, char *err,
                         size_t errlen)
{
    size_t n = 0, strings = 0, max = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            strings++;
            continue;
        }
        if (lua_type(L, -1) == LUA_TNUMBER) {
            lua_Number k = lua_tonumber(L, -1);
            if (k >= 1 && k == floor(k) && k < 1e15) {
                n++;
                if ((size_t)k > max)
                    max = (size_t)k;
                continue;
            }
        }
        lua_pop(L, 1);
        snprintf(err, errlen, "table has a key that is neither a string nor a list index");
        return -1;
    }
    if (strings > 0 && (n > 0 || marked_list)) {
        snprintf(err, errlen, marked_list ? "list (ddb.list) has a string key"
                                          : "table mixes list indexes and string keys");
        return -1;
    }
    if (n == 0) {
        *len = 0;
        return marked_list;
    }
    if (max != n) {
        snprintf(err, errlen, "list has holes (%lu items, highest index %lu)",
                 (unsigned long)n, (unsigned long)max);
        return -1;
    }
    *len = n;
    return 1;
}

int ddb_json_table_kind(lua_State *L, int idx, size_t *len, char *err, size_t errlen)
{
    /* A marked list is still scanned: a string key in it would otherwise vanish silently. */
    int marked_list = ddb_json_has_mt(L, idx, JSON_LIST_MT);
    if (!marked_list && ddb_json_has_mt(L, idx, JSON_MAP_MT))
        return 0;
    return ddb_json_table_shape(L, idx, marked_list, len, err, errlen);
}

static int encode_value(lua_State *L, int idx, buf *out, int depth, char *err, size_t errlen);

enum { MARK_NONE, MARK_LIST, MARK_MAP };

void ddb_json_key_error(lua_State *L, int idx, int marked_map, char *err, size_t errlen)
{
    lua_Number n;
    if (marked_map) {
        snprintf(err, errlen, "map key is a %s, not a string", luaL_typename(L, idx));
        return;
    }
    n = lua_type(L, idx) == LUA_TNUMBER ? lua_tonumber(L, idx) : 0;
    snprintf(err, errlen, n >= 1 && n == floor(n) && n < 1e15
             ? "table mixes list indexes and string keys"
             : "table has a key that is neither a string nor a list index");
}

static int nomem(char *err, size_t errlen)
{
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* Appends s[0..n) as a JSON string, or says why this module cannot send it as text. */
int ddb_json_add_string(buf *out, const char *s, size_t n, char *err, size_t errlen)
{
    switch (json_add_text(out, s, n)) {
    case TEXT_OK:
        return 0;
    case TEXT_NUL:
        snprintf(err, errlen, "string contains a NUL byte, which this module cannot carry "
                 "in text (use ddb.binary)");
        return -1;
    case TEXT_NOT_UTF8:
        snprintf(err, errlen, "string is not valid UTF-8 (use ddb.binary for bytes)");
        return -1;
    default:
        return nomem(err, errlen);
    }
}

/* Writes the object at idx as it is walked, once: lua_next has put its first pair on the
 * stack. Any key that is not a string fails the whole table, so no second walk is needed to
 * tell a map from a list (marked: MARK_MAP, or MARK_NONE when the first key was a string). */
static int encode_pairs(lua_State *L, int idx, int marked, buf *out, int depth, char *err,
                        size_t errlen)
{
    int first = 1;
    if (buf_addc(out, '{'))
        goto nomem_pop2;
    do {
        size_t klen;
        const char *k;
        int rc;
        /* lua_tolstring would turn a number key into a string under lua_next */
        if (lua_type(L, -2) != LUA_TSTRING) {
            ddb_json_key_error(L, -2, marked == MARK_MAP, err, errlen);
            lua_pop(L, 2);
            return -1;
        }
        k = lua_tolstring(L, -2, &klen);
        if (!first && buf_addc(out, ','))
            goto nomem_pop2;
        first = 0;
        rc = json_add_text(out, k, klen);
        if (rc > 0) {
            lua_pop(L, 2);
            snprintf(err, errlen, "map key is not valid UTF-8 text");
            return -1;
        }
        if (rc < 0 || buf_addc(out, ':'))
            goto nomem_pop2;
        if (encode_value(L, lua_gettop(L), out, depth + 1, err, errlen)) {
            lua_pop(L, 2);
            return -1;
        }
        lua_pop(L, 1);
    } while (lua_next(L, idx) != 0);
    return buf_addc(out, '}') ? nomem(err, errlen) : 0;
nomem_pop2:
    lua_pop(L, 2);
    return nomem(err, errlen);
}

static int encode_table(lua_State *L, int idx, buf *out, int depth, char *err, size_t errlen)
{
    size_t len = 0, i;
    int kind, marked = MARK_NONE;
    if (depth >= JSON_MAX_DEPTH) {
        snprintf(err, errlen, "nesting deeper than %d levels (or a cyclic table)", JSON_MAX_DEPTH);
        return -1;
    }
    if (lua_getmetatable(L, idx)) {
        /* Only the list/map markers are plain data; other metatables are values in disguise. */
        luaL_getmetatable(L, JSON_LIST_MT);
        if (lua_rawequal(L, -1, -2)) {
            marked = MARK_LIST;
        } else {
            lua_pop(L, 1);
            luaL_getmetatable(L, JSON_MAP_MT);
            if (lua_rawequal(L, -1, -2))
                marked = MARK_MAP;
        }
        lua_pop(L, 2);
        if (marked == MARK_NONE) {
            snprintf(err, errlen, "table with a metatable cannot be sent as JSON "
                     "(wrap plain values with ddb.marshal)");
            return -1;
        }
    }
    luaL_checkstack(L, 4, "JSON nesting");
    if (marked != MARK_LIST) {
        lua_pushnil(L);
        if (lua_next(L, idx) == 0)
            return buf_add(out, "{}", 2) ? nomem(err, errlen) : 0;
        if (marked == MARK_MAP || lua_type(L, -2) == LUA_TSTRING)
            return encode_pairs(L, idx, marked, out, depth, err, errlen);
        lua_pop(L, 2);
    }
    /* A marked list is still scanned: a string key in it would otherwise vanish silently. */
    kind = ddb_json_table_shape(L, idx, marked == MARK_LIST, &len, err, errlen);
    if (kind < 0)
        return -1;
    if (kind == 0)
        return buf_add(out, "{}", 2) ? nomem(err, errlen) : 0;
    if (buf_addc(out, '['))
        return nomem(err, errlen);
    for (i = 1; i <= len; i++) {
        if (i > 1 && buf_addc(out, ','))
            return nomem(err, errlen);
        lua_rawgeti(L, idx, (int)i);
        if (encode_value(L, lua_gettop(L), out, depth + 1, err, errlen)) {
            lua_pop(L, 1);
            return -1;
        }
        lua_pop(L, 1);
    }
    return buf_addc(out, ']') ? nomem(err, errlen) : 0;
}

static int encode_value(lua_State *L, int idx, buf *out, int depth, char *err, size_t errlen)
{
    char num[64];
    size_t n;
    const char *s;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return ddb_buf_adds(out, "null");
    case LUA_TBOOLEAN:
        return ddb_buf_adds(out, lua_toboolean(L, idx) ? "true" : "false");
    case LUA_TNUMBER:
#if DDB_HAS_INTEGERS
        if (lua_isinteger(L, idx)) {
            n = ddb_number_write_int((long long)lua_tointeger(L, idx), num);
            return buf_add(out, num, n) ? nomem(err, errlen) : 0;
        }
#endif
        {
            lua_Number d = lua_tonumber(L, idx);
            if (isnan(d) || isinf(d)) {
                snprintf(err, errlen, "NaN and infinity cannot be sent as JSON");
                return -1;
            }
            n = ddb_number_write(d, num, sizeof num);
            return buf_add(out, num, n) ? nomem(err, errlen) : 0;
        }
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &n);
        return ddb_json_add_string(out, s, n, err, errlen);
    case LUA_TTABLE:
        return encode_table(L, idx, out, depth, err, errlen);
    default:
        snprintf(err, errlen, "a %s cannot be sent as JSON", luaL_typename(L, idx));
        return -1;
    }
}

int ddb_json_encode(lua_State *L, int idx, buf *out, char *err, size_t errlen)
{
    int top = lua_gettop(L);
    int rc;
    if (idx < 0)
        idx = top + idx + 1;
    err[0] = '\0';
    rc = encode_value(L, idx, out, 0, err, errlen);
    if (rc && err[0] == '\0')
        snprintf(err, errlen, "out of memory");
    lua_settop(L, top);
    return rc;
}

typedef struct push_job {
    const ddb_jnode *nodes;
    const json_decode_opts *o;
} push_job;

static void push_json(lua_State *L, const push_job *job, const ddb_jnode *j, int depth);

static void push_number(lua_State *L, const push_job *job, const ddb_jnode *j)
{
    double d;
    if (job->o->number != NULL) {
        job->o->number(L, j->s, j->len, j->at);
        return;
    }
    d = ddb_number_read(j->s, j->len);
    if (isinf(d) || isnan(d))
        luaL_error(L, "at byte %d: JSON holds a number beyond the range of a double",
                   (int)j->at + 1);
#if DDB_HAS_INTEGERS
    if (d == floor(d) && fabs(d) < 9007199254740992.0) {
        lua_pushinteger(L, (lua_Integer)d);
        return;
    }
#endif
    lua_pushnumber(L, d);
}

typedef struct also_job {
    const json_decode_opts *o;
    const ddb_jnode *node;
} also_job;

static int push_also_protected(lua_State *L)
{
    const also_job *a = lua_touserdata(L, 1);
    a->o->fn(L, a->node);
    return 1;
}

/* Stores fn's value of the member c under o->also in the object on top; a value fn refuses
 * is left out (the member itself was decoded, and its reader will say what is wrong). */
static void push_also(lua_State *L, const push_job *job, const ddb_jnode *c)
{
    also_job a;
    a.o = job->o;
    a.node = c;
    lua_pushstring(L, job->o->also);
    lua_pushcfunction(L, push_also_protected);
    lua_pushlightuserdata(L, &a);
    if (lua_pcall(L, 1, 1, 0) == 0)
        lua_rawset(L, -3);
    else
        lua_pop(L, 2);
}

/* Pushes the members of the object j; with exact, a name given twice is refused. */
static void push_object(lua_State *L, const push_job *job, const ddb_jnode *j, int depth)
{
    const ddb_jnode *c = j + 1;
    const json_decode_opts *o = job->o;
    uint32_t i;
    lua_createtable(L, 0, (int)j->len);
    for (i = 0; i < j->len; i++, c += c->skip) {
        if (c->type == DDB_J_NULL && !o->exact)
            continue;
        lua_pushlstring(L, c->key, c->keylen);
        if (o->exact) {
            lua_pushvalue(L, -1);
            lua_rawget(L, -3);
            if (!lua_isnil(L, -1)) {
                char name[48];
                size_t k, n = c->keylen > 40 ? 37 : c->keylen;
                for (k = 0; k < n; k++)
                    name[k] = (unsigned char)c->key[k] < 0x20 ? '?' : c->key[k];
                memcpy(name + n, "...", c->keylen > 40 ? 4 : 1);
                if (c->keylen <= 40)
                    name[n] = '\0';
                luaL_error(L, "at byte %d: member '%s' given twice", (int)c->key_at + 1, name);
            }
            lua_pop(L, 1);
        }
        if (depth == 0 && o->fn != NULL && c->keylen == strlen(o->key) &&
            memcmp(c->key, o->key, c->keylen) == 0) {
            if (o->skip) {
                lua_pop(L, 1);        /* the member itself left out: fn's value only */
                push_also(L, job, c);
                continue;
            } else if (o->also == NULL) {
                o->fn(L, c);
            } else {
                push_json(L, job, c, depth + 1);
                lua_rawset(L, -3);
                push_also(L, job, c);
                continue;
            }
        } else {
            push_json(L, job, c, depth + 1);
        }
        lua_rawset(L, -3);
    }
}

static void push_json(lua_State *L, const push_job *job, const ddb_jnode *j, int depth)
{
    const ddb_jnode *c;
    uint32_t i;
    int k;
    luaL_checkstack(L, 4, "JSON nesting");
    switch (j->type) {
    case DDB_J_FALSE:
    case DDB_J_TRUE:
        lua_pushboolean(L, j->type == DDB_J_TRUE);
        break;
    case DDB_J_NULL:
        if (job->o->exact)
            lua_getfield(L, LUA_REGISTRYINDEX, JSON_NULL_KEY);
        else
            lua_pushnil(L);
        break;
    case DDB_J_NUMBER:
        push_number(L, job, j);
        break;
    case DDB_J_STRING:
        lua_pushlstring(L, j->s, j->len);
        break;
    case DDB_J_ARRAY:
        lua_createtable(L, (int)j->len, 0);
        for (i = 0, k = 1, c = j + 1; i < j->len; i++, c += c->skip) {
            if (c->type == DDB_J_NULL && !job->o->exact)
                continue;
            push_json(L, job, c, depth + 1);
            lua_rawseti(L, -2, k++);
        }
        luaL_getmetatable(L, JSON_LIST_MT);
        lua_setmetatable(L, -2);
        break;
    default:
        push_object(L, job, j, depth);
    }
}

static int push_json_protected(lua_State *L)
{
    const push_job *job = lua_touserdata(L, 1);
    push_json(L, job, job->nodes, 0);
    return 1;
}

int ddb_json_decode(lua_State *L, const char *s, size_t n)
{
    json_decode_opts o = { NULL, NULL, 0, 0, NULL, NULL, 0 };
    return ddb_json_decode_opts(L, s, n, &o);
}

void ddb_json_push_node(lua_State *L, const ddb_jnode *j)
{
    static const json_decode_opts plain_opts = { NULL, NULL, 0, 0, NULL, NULL, 0 };
    push_job job;
    job.nodes = NULL;
    job.o = &plain_opts;
    push_json(L, &job, j, 1);
}

int ddb_json_push_doc(lua_State *L, const ddb_jnode *nodes, const json_decode_opts *o)
{
    push_job job;
    job.nodes = nodes;
    job.o = o;
    lua_pushcfunction(L, push_json_protected);
    lua_pushlightuserdata(L, &job);
    if (lua_pcall(L, 1, 1, 0) != 0) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 0;
    }
    return 1;
}

int ddb_json_decode_opts(lua_State *L, const char *s, size_t n, const json_decode_opts *o)
{
    ddb_jdoc doc;
    ddb_jnode local[DDB_JDOC_LOCAL];
    int rc = ddb_jdoc_read_in(&doc, local, DDB_JDOC_LOCAL, s, n, o->max_depth);
    if (rc != 0) {
        char msg[256];
        ddb_jdoc_free(&doc);
        if (rc == -2)
            return luaL_error(L, "out of memory");
        ddb_jdoc_message(&doc, msg, sizeof msg);
        lua_pushnil(L);
        lua_pushstring(L, msg);
        return 0;
    }
    /* pushed in a protected call: a memory error or a refused value must not leak the nodes */
    rc = ddb_json_push_doc(L, doc.nodes, o);
    ddb_jdoc_free(&doc);
    return rc;
}
