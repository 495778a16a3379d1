/* JSON for the DynamoDB protocol: a direct encoder from Lua values and a cJSON-based decoder. */
#include "json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

/* Levels of arrays and objects, counting the outermost. DynamoDB nests attributes 32 deep and
 * each level costs two here ({"M": {...}}), inside requests that wrap items 5 levels deep
 * (TransactItems); the bound also stops cyclic tables. */
#define JSON_MAX_DEPTH 128

int ddb_json_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c;
        size_t need, k;
        unsigned cp;
        if (i + 8 <= n) {
            /* most text is ASCII: step over 8 such bytes at a time */
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080ull) == 0) {
                i += 8;
                continue;
            }
        }
        c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= need)
            return 0;
        for (k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += need + 1;
    }
    return 1;
}

/* Appends the JSON string literal for s; fails (-1) on allocation failure only. */
static int json_add_string(buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, start = 0;
    if (ddb_buf_reserve(out, n + 2) || buf_addc(out, '"'))
        return -1;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[6];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if (buf_add(out, s + start, i - start))
            return -1;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            u[0] = '\\'; u[1] = 'u'; u[2] = '0'; u[3] = '0';
            u[4] = hex[c >> 4]; u[5] = hex[c & 15];
            if (buf_add(out, u, 6))
                return -1;
        }
        if (esc != NULL && ddb_buf_adds(out, esc))
            return -1;
        start = i + 1;
    }
    if (buf_add(out, s + start, n - start) || buf_addc(out, '"'))
        return -1;
    return 0;
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

int ddb_json_table_kind(lua_State *L, int idx, size_t *len, char *err, size_t errlen)
{
    size_t n = 0, strings = 0, max = 0;
    /* A marked list is still scanned: a string key in it would otherwise vanish silently. */
    int marked_list = ddb_json_has_mt(L, idx, JSON_LIST_MT);
    if (!marked_list && ddb_json_has_mt(L, idx, JSON_MAP_MT))
        return 0;
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

static int encode_value(lua_State *L, int idx, buf *out, int depth, char *err, size_t errlen);

static int encode_table(lua_State *L, int idx, buf *out, int depth, char *err, size_t errlen)
{
    size_t len = 0, i;
    int kind, first = 1;
    if (depth >= JSON_MAX_DEPTH) {
        snprintf(err, errlen, "nesting deeper than %d levels (or a cyclic table)", JSON_MAX_DEPTH);
        return -1;
    }
    if (lua_getmetatable(L, idx)) {
        /* Only the list/map markers are plain data; other metatables are values in disguise. */
        int ok;
        luaL_getmetatable(L, JSON_LIST_MT);
        ok = lua_rawequal(L, -1, -2);
        lua_pop(L, 1);
        luaL_getmetatable(L, JSON_MAP_MT);
        ok = ok || lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (!ok) {
            snprintf(err, errlen, "table with a metatable cannot be sent as JSON "
                     "(wrap plain values with ddb.marshal)");
            return -1;
        }
    }
    kind = ddb_json_table_kind(L, idx, &len, err, errlen);
    if (kind < 0)
        return -1;
    luaL_checkstack(L, 4, "JSON nesting");
    if (kind == 1) {
        if (buf_addc(out, '['))
            goto nomem;
        for (i = 1; i <= len; i++) {
            if (i > 1 && buf_addc(out, ','))
                goto nomem;
            lua_rawgeti(L, idx, (int)i);
            if (encode_value(L, lua_gettop(L), out, depth + 1, err, errlen)) {
                lua_pop(L, 1);
                return -1;
            }
            lua_pop(L, 1);
        }
        return buf_addc(out, ']') ? -1 : 0;
    }
    if (buf_addc(out, '{'))
        goto nomem;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        size_t klen;
        const char *k;
        /* A map-marked table skips ddb_json_table_kind's key check; lua_tolstring would turn a
         * number key into a string under lua_next, and give NULL for any other type. */
        if (lua_type(L, -2) != LUA_TSTRING) {
            snprintf(err, errlen, "map key is a %s, not a string", luaL_typename(L, -2));
            lua_pop(L, 2);
            return -1;
        }
        k = lua_tolstring(L, -2, &klen);
        if (!first && buf_addc(out, ','))
            goto nomem_pop2;
        first = 0;
        if (!ddb_json_utf8_valid(k, klen) || memchr(k, '\0', klen) != NULL) {
            lua_pop(L, 2);
            snprintf(err, errlen, "map key is not valid UTF-8 text");
            return -1;
        }
        if (json_add_string(out, k, klen) || buf_addc(out, ':'))
            goto nomem_pop2;
        if (encode_value(L, lua_gettop(L), out, depth + 1, err, errlen)) {
            lua_pop(L, 2);
            return -1;
        }
        lua_pop(L, 1);
    }
    return buf_addc(out, '}') ? -1 : 0;
nomem_pop2:
    lua_pop(L, 2);
nomem:
    snprintf(err, errlen, "out of memory");
    return -1;
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
            snprintf(num, sizeof num, LUA_INTEGER_FMT, lua_tointeger(L, idx));
            return ddb_buf_adds(out, num);
        }
#endif
        {
            lua_Number d = lua_tonumber(L, idx);
            if (isnan(d) || isinf(d)) {
                snprintf(err, errlen, "NaN and infinity cannot be sent as JSON");
                return -1;
            }
            if (d == floor(d) && fabs(d) < 1e15)
                snprintf(num, sizeof num, "%.0f", d);
            else
                snprintf(num, sizeof num, "%.17g", d);
            return ddb_buf_adds(out, num);
        }
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &n);
        if (memchr(s, '\0', n) != NULL) {
            snprintf(err, errlen, "string contains a NUL byte, which this module cannot carry "
                     "in text (use ddb.binary)");
            return -1;
        }
        if (!ddb_json_utf8_valid(s, n)) {
            snprintf(err, errlen, "string is not valid UTF-8 (use ddb.binary for bytes)");
            return -1;
        }
        return json_add_string(out, s, n);
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

/* Pushes the Lua value of j; a member of j named key (an object's, not deeper) is pushed by
 * fn instead (key NULL: none). */
static void push_json(lua_State *L, const cJSON *j, const char *key, json_push_fn fn)
{
    const cJSON *c;
    int i;
    luaL_checkstack(L, 3, "JSON nesting");
    switch (j->type & 0xFF) {
    case cJSON_False:
        lua_pushboolean(L, 0);
        break;
    case cJSON_True:
        lua_pushboolean(L, 1);
        break;
    case cJSON_Number: {
        double d = j->valuedouble;
#if DDB_HAS_INTEGERS
        if (d == floor(d) && fabs(d) < 9007199254740992.0) {
            lua_pushinteger(L, (lua_Integer)d);
            break;
        }
#endif
        lua_pushnumber(L, d);
        break;
    }
    case cJSON_String:
        /* pushlstring: Lua 5.4's lua_pushstring first searches a cache keyed by the
         * pointer with strcmp, a miss every time for a fresh tree */
        lua_pushlstring(L, j->valuestring, strlen(j->valuestring));
        break;
    case cJSON_Array:
        lua_createtable(L, cJSON_GetArraySize(j), 0);
        for (c = j->child, i = 1; c != NULL; c = c->next) {
            if ((c->type & 0xFF) == cJSON_NULL)
                continue;
            push_json(L, c, NULL, NULL);
            lua_rawseti(L, -2, i++);
        }
        luaL_getmetatable(L, JSON_LIST_MT);
        lua_setmetatable(L, -2);
        break;
    case cJSON_Object:
        for (c = j->child, i = 0; c != NULL; c = c->next)
            i++;
        lua_createtable(L, 0, i);
        for (c = j->child; c != NULL; c = c->next) {
            if ((c->type & 0xFF) == cJSON_NULL || c->string == NULL)
                continue;
            lua_pushlstring(L, c->string, strlen(c->string));
            if (key != NULL && strcmp(c->string, key) == 0)
                fn(L, c);
            else
                push_json(L, c, NULL, NULL);
            lua_rawset(L, -3);
        }
        break;
    default:
        lua_pushnil(L);
    }
}

/* A number beyond a double's range reads as infinity: no Lua number holds it and nothing
 * encodes it back, so such a document is refused. */
static int has_infinite_number(const cJSON *j, int depth)
{
    const cJSON *c;
    if (depth > 200)
        return 1;
    if ((j->type & 0xFF) == cJSON_Number)
        return isinf(j->valuedouble) || isnan(j->valuedouble);
    for (c = j->child; c != NULL; c = c->next)
        if (has_infinite_number(c, depth + 1))
            return 1;
    return 0;
}

typedef struct push_job {
    const cJSON *root;
    const char *key;     /* the top-level member handed to fn, or NULL */
    json_push_fn fn;
} push_job;

static int push_json_protected(lua_State *L)
{
    const push_job *job = lua_touserdata(L, 1);
    push_json(L, job->root, job->key, job->fn);
    return 1;
}

/* cJSON turns \u0000 into a terminator and would cut the string silently: refuse instead. */
static int has_escaped_nul(const char *s, size_t n)
{
    const char *p = s, *end = s + n;
    while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
        if (end - p > 5 && memcmp(p + 1, "u0000", 5) == 0)
            return 1;
        p += 2;   /* skip the escaped character so "\\u0000" is not misread */
        if (p >= end)
            break;
    }
    return 0;
}

int ddb_json_decode(lua_State *L, const char *s, size_t n)
{
    return ddb_json_decode_with(L, s, n, NULL, NULL);
}

int ddb_json_decode_with(lua_State *L, const char *s, size_t n, const char *key, json_push_fn fn)
{
    cJSON *j;
    push_job job;
    const char *end = NULL;
    const char *msg = NULL;
    int rc = 0;
    /* cJSON copies a raw NUL into a string and lua_pushstring would then cut it short. */
    if (memchr(s, '\0', n) != NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "JSON text holds a NUL byte");
        return 0;
    }
    /* JSON text is UTF-8 (RFC 8259); cJSON does not check, and what decodes here must
     * encode again. */
    if (!ddb_json_utf8_valid(s, n)) {
        lua_pushnil(L);
        lua_pushliteral(L, "JSON text is not valid UTF-8");
        return 0;
    }
    if (has_escaped_nul(s, n)) {
        lua_pushnil(L);
        lua_pushliteral(L, "JSON holds a string with a NUL character, which this module "
                           "does not represent");
        return 0;
    }
    /* cJSON's allocator is process-wide state that belongs to the host (issue 16.2): parse
     * with whatever it is and give the tree back through cJSON_Delete, which uses the same. */
    j = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    if (j == NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "body is not valid JSON");
        return 0;
    }
    while (end != NULL && end < s + n && (*end == ' ' || *end == '\n' || *end == '\r' ||
                                          *end == '\t'))
        end++;
    if (end != NULL && end < s + n)
        msg = "body has data after the JSON value";
    else if (has_infinite_number(j, 0))
        msg = "JSON holds a number beyond the range of a double";
    if (msg == NULL) {
        /* Push in a protected call so a memory error in Lua cannot leak the tree. */
        job.root = j;
        job.key = fn != NULL ? key : NULL;
        job.fn = fn;
        lua_pushcfunction(L, push_json_protected);
        lua_pushlightuserdata(L, &job);
        rc = lua_pcall(L, 1, 1, 0);
    }
    cJSON_Delete(j);
    if (msg != NULL) {
        lua_pushnil(L);
        lua_pushstring(L, msg);
        return 0;
    }
    if (rc != 0) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 0;
    }
    return 1;
}
