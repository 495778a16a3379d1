/* Plain Lua values -> DynamoDB AttributeValues (the typed form a request sends), with the
 * attribute path named in every refusal. */
#include "internal.h"
#include "../number.h"
#include "../utf8.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>

/* ---- helpers ---- */

/* Called for every attribute on the success path too, so plain copies, no formatting:
 * the same text as "%s%.*s" with a "." between keys and keys cut at 40 bytes. */
size_t ddb_path_push_key(av_path *p, const char *k, size_t klen)
{
    size_t old = p->len, room;
    if (klen > 40)
        klen = 40;
    if (p->len > 0 && p->len + 1 < sizeof p->s)
        p->s[p->len++] = '.';
    room = sizeof p->s - 1 - p->len;
    if (klen > room)
        klen = room;
    memcpy(p->s + p->len, k, klen);
    p->len += klen;
    p->s[p->len] = '\0';
    return old;
}

static size_t path_push_index(av_path *p, size_t i)
{
    size_t old = p->len, w;
    char text[32];
    text[0] = '[';
    w = 1 + ddb_number_write_int((long long)i, text + 1);
    text[w++] = ']';
    if (w > sizeof p->s - 1 - p->len)
        w = sizeof p->s - 1 - p->len;   /* cut short, as snprintf would */
    memcpy(p->s + p->len, text, w);
    p->len += w;
    p->s[p->len] = '\0';
    return old;
}

void ddb_path_pop(av_path *p, size_t old)
{
    p->len = old;
    p->s[old] = '\0';
}

int ddb_av_fail(lua_State *L, const av_path *p, const char *msg)
{
    return luaL_error(L, "%s%s%s", p->len ? p->s : "", p->len ? ": " : "", msg);
}

static void push_base64(lua_State *L, const char *s, size_t n)
{
    size_t outlen = 4 * ((n + 2) / 3);
    unsigned char *tmp = lua_newuserdata(L, outlen + 1);
    EVP_EncodeBlock(tmp, (const unsigned char *)s, (int)n);
    lua_pushlstring(L, (const char *)tmp, outlen);
    lua_remove(L, -2);
}

void ddb_check_text(lua_State *L, const av_path *p, const char *s, size_t n)
{
    if (memchr(s, '\0', n) != NULL)
        ddb_av_fail(L, p, "string contains a NUL byte; store bytes with ddb.binary");
    if (!ddb_utf8_valid(s, n))
        ddb_av_fail(L, p, "string is not valid UTF-8; store bytes with ddb.binary");
}

/* Reads a Lua number, number wrapper or numeric string at idx as a checked decimal. */
void ddb_read_number(lua_State *L, int idx, const av_path *p, av_dec *x)
{
    char text[64];
    const char *s;
    size_t n;
    const char *why;
    if (lua_type(L, idx) == LUA_TNUMBER) {
#if DDB_HAS_INTEGERS
        if (lua_isinteger(L, idx)) {
            n = ddb_number_write_int((long long)lua_tointeger(L, idx), text);
            ddb_av_dec_parse(text, n, x);
            return;
        }
#endif
        {
            lua_Number d = lua_tonumber(L, idx);
            if (isnan(d) || isinf(d))
                ddb_av_fail(L, p, "NaN and infinity cannot be stored in DynamoDB");
            n = ddb_number_write(d, text, sizeof text);
            ddb_av_dec_parse(text, n, x);
        }
    } else {
        int bad;
        if (lua_type(L, idx) == LUA_TTABLE)
            lua_getfield(L, idx, "value");
        else
            lua_pushvalue(L, idx);
        s = lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER
                ? lua_tolstring(L, -1, &n) : NULL;
        bad = s == NULL || ddb_av_dec_parse(s, n, x) != 0;
        lua_pop(L, 1);
        if (bad)
            ddb_av_fail(L, p, "not a number");
    }
    why = ddb_av_dec_check(x);
    if (why != NULL)
        ddb_av_fail(L, p, why);
}

/* ---- marshal ---- */

void ddb_marshal_value(lua_State *L, int idx, av_path *p, int depth);

static void set_av(lua_State *L, const char *type)
{
    /* stack: value -> { [type] = value } */
    lua_createtable(L, 0, 1);
    lua_insert(L, -2);
    lua_setfield(L, -2, type);
}

static void marshal_set(lua_State *L, int idx, av_path *p, const char *type)
{
    size_t n = lua_rawlen(L, idx), i;
    int seen, out;
    if (n == 0)
        ddb_av_fail(L, p, "DynamoDB cannot store an empty set; remove the attribute instead");
    luaL_checkstack(L, 6, "set");
    lua_newtable(L);
    seen = lua_gettop(L);
    lua_createtable(L, (int)n, 0);
    out = lua_gettop(L);
    for (i = 1; i <= n; i++) {
        size_t old = path_push_index(p, i);
        size_t len;
        const char *s;
        lua_rawgeti(L, idx, (int)i);
        if (type[0] == 'N') {
            av_dec x;
            ddb_read_number(L, -1, p, &x);
            lua_pop(L, 1);
            ddb_push_dec(L, &x);
        } else {
            if (lua_type(L, -1) != LUA_TSTRING)
                ddb_av_fail(L, p, type[0] == 'S' ? "string set element is not a string"
                                             : "binary set element is not a string of bytes");
            s = lua_tolstring(L, -1, &len);
            if (type[0] == 'S')
                ddb_check_text(L, p, s, len);
        }
        /* the canonical form (numbers) or the raw bytes decide duplicates */
        lua_pushvalue(L, -1);
        lua_rawget(L, seen);
        if (!lua_isnil(L, -1))
            ddb_av_fail(L, p, "set holds the same value twice");
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushboolean(L, 1);
        lua_rawset(L, seen);
        if (type[0] == 'B') {
            s = lua_tolstring(L, -1, &len);
            push_base64(L, s, len);
            lua_remove(L, -2);
        }
        lua_rawseti(L, out, (int)i);
        ddb_path_pop(p, old);
    }
    lua_remove(L, seen);
    set_av(L, type);
}

/* Pushes { M = ... } for the table at idx. walking: lua_next has put its first pair on the
 * stack (else the table is empty); marked_map: it has ddb.map's metatable. */
static void marshal_map(lua_State *L, int idx, av_path *p, int depth, int marked_map,
                        int walking)
{
    int out;
    lua_newtable(L);
    if (walking)
        lua_insert(L, -3);
    out = lua_gettop(L) - (walking ? 2 : 0);
    while (walking) {
        size_t klen, old;
        const char *k;
        /* lua_tolstring would give NULL for a boolean key and turn a number key into a string
         * under lua_next */
        if (lua_type(L, -2) != LUA_TSTRING) {
            char msg[96];
            ddb_json_key_error(L, -2, marked_map, msg, sizeof msg);
            ddb_av_fail(L, p, msg);
        }
        k = lua_tolstring(L, -2, &klen);
        old = ddb_path_push_key(p, k, klen);
        ddb_check_text(L, p, k, klen);
        ddb_marshal_value(L, lua_gettop(L), p, depth + 1);
        lua_remove(L, -2);
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, out);
        ddb_path_pop(p, old);
        walking = lua_next(L, idx) != 0;
    }
    luaL_getmetatable(L, JSON_MAP_MT);
    lua_setmetatable(L, out);
    set_av(L, "M");
}

static void marshal_table(lua_State *L, int idx, av_path *p, int depth)
{
    char err[128];
    size_t len, i;
    int kind, out, marked_list = 0, marked_map = 0;
    if (depth >= AV_MAX_DEPTH)
        ddb_av_fail(L, p, "nesting deeper than DynamoDB's 32 levels (or a cyclic table)");
    /* most tables are plain maps and lists: one look for a metatable, not seven */
    if (!lua_getmetatable(L, idx))
        goto plain;
    lua_pop(L, 1);
    if (ddb_json_has_mt(L, idx, AV_NUMBER_MT)) {
        av_dec x;
        ddb_read_number(L, idx, p, &x);
        ddb_push_dec(L, &x);
        set_av(L, "N");
        return;
    }
    if (ddb_json_has_mt(L, idx, AV_BINARY_MT)) {
        const char *s;
        lua_getfield(L, idx, "value");
        if (lua_type(L, -1) != LUA_TSTRING)
            ddb_av_fail(L, p, "ddb.binary value is not a string");
        s = lua_tolstring(L, -1, &len);
        push_base64(L, s, len);
        lua_remove(L, -2);
        set_av(L, "B");
        return;
    }
    if (ddb_json_has_mt(L, idx, AV_NULL_MT)) {
        lua_pushboolean(L, 1);
        set_av(L, "NULL");
        return;
    }
    if (ddb_json_has_mt(L, idx, AV_SS_MT)) {
        marshal_set(L, idx, p, "SS");
        return;
    }
    if (ddb_json_has_mt(L, idx, AV_NS_MT)) {
        marshal_set(L, idx, p, "NS");
        return;
    }
    if (ddb_json_has_mt(L, idx, AV_BS_MT)) {
        marshal_set(L, idx, p, "BS");
        return;
    }
    marked_list = ddb_json_has_mt(L, idx, JSON_LIST_MT);
    marked_map = !marked_list && ddb_json_has_mt(L, idx, JSON_MAP_MT);
    if (!marked_list && !marked_map)
        ddb_av_fail(L, p, "table with a foreign metatable cannot be stored");
plain:
    luaL_checkstack(L, 6, "AttributeValue nesting");
    if (!marked_list) {
        /* a map is written as it is walked: a key that is not a string fails the whole table */
        lua_pushnil(L);
        if (lua_next(L, idx) == 0) {
            marshal_map(L, idx, p, depth, 0, 0);
            return;
        }
        if (marked_map || lua_type(L, -2) == LUA_TSTRING) {
            marshal_map(L, idx, p, depth, marked_map, 1);
            return;
        }
        lua_pop(L, 2);
    }
    kind = ddb_json_table_shape(L, idx, marked_list, &len, err, sizeof err);
    if (kind < 0)
        ddb_av_fail(L, p, err);
    if (kind == 0) {
        marshal_map(L, idx, p, depth, 0, 0);
        return;
    }
    lua_createtable(L, (int)len, 0);
    out = lua_gettop(L);
    for (i = 1; i <= len; i++) {
        size_t old = path_push_index(p, i);
        lua_rawgeti(L, idx, (int)i);
        ddb_marshal_value(L, lua_gettop(L), p, depth + 1);
        lua_remove(L, -2);
        lua_rawseti(L, out, (int)i);
        ddb_path_pop(p, old);
    }
    luaL_getmetatable(L, JSON_LIST_MT);
    lua_setmetatable(L, out);
    set_av(L, "L");
}

void ddb_marshal_value(lua_State *L, int idx, av_path *p, int depth)
{
    size_t n;
    const char *s;
    av_dec x;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &n);
        ddb_check_text(L, p, s, n);
        lua_pushvalue(L, idx);
        set_av(L, "S");
        return;
    case LUA_TNUMBER:
#if DDB_HAS_INTEGERS
        if (lua_isinteger(L, idx)) {
            /* an integer's canonical text is its plain decimal form (19 digits at most) */
            char text[32];
            size_t w = ddb_number_write_int((long long)lua_tointeger(L, idx), text);
            lua_pushlstring(L, text, w);
            set_av(L, "N");
            return;
        }
#endif
        ddb_read_number(L, idx, p, &x);
        ddb_push_dec(L, &x);
        set_av(L, "N");
        return;
    case LUA_TBOOLEAN:
        lua_pushboolean(L, lua_toboolean(L, idx));
        set_av(L, "BOOL");
        return;
    case LUA_TTABLE:
        marshal_table(L, idx, p, depth);
        return;
    case LUA_TNIL:
        ddb_av_fail(L, p, "nil cannot be stored (use ddb.null for NULL)");
        return;
    default: {
        char msg[96];
        snprintf(msg, sizeof msg, "a %s cannot be stored in DynamoDB", luaL_typename(L, idx));
        ddb_av_fail(L, p, msg);
    }
    }
}

int ddb_av_lua_marshal(lua_State *L)
{
    av_path p;
    p.len = 0;
    p.s[0] = '\0';
    lua_settop(L, 1);
    ddb_marshal_value(L, 1, &p, 0);
    return 1;
}

int ddb_av_lua_marshal_item(lua_State *L)
{
    av_path p;
    int out;
    p.len = 0;
    p.s[0] = '\0';
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_newtable(L);
    out = 2;
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        size_t klen, old;
        const char *k;
        if (lua_type(L, -2) != LUA_TSTRING)
            ddb_av_fail(L, &p, "item attribute names must be strings");
        k = lua_tolstring(L, -2, &klen);
        old = ddb_path_push_key(&p, k, klen);
        if (klen == 0)
            ddb_av_fail(L, &p, "attribute name is empty");
        ddb_check_text(L, &p, k, klen);
        ddb_marshal_value(L, lua_gettop(L), &p, 1);
        lua_remove(L, -2);
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, out);
        ddb_path_pop(&p, old);
    }
    luaL_getmetatable(L, JSON_MAP_MT);
    lua_setmetatable(L, out);
    return 1;
}

/* core.key_av(key, hash[, range]) -> the key's AttributeValues as marshal_item makes them, or
 * false when its names are not exactly hash (and range) or a value is not a string, number or
 * binary (lua/ddb/engine/keys.lua then says which). Raises as marshal_item does on a value
 * that cannot be marshalled. One call where the Lua took a pcall and two walks. */
int ddb_av_lua_key(lua_State *L)
{
    int n = 0, want;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TSTRING);
    want = lua_isnoneornil(L, 3) ? 1 : 2;
    lua_settop(L, 3);
    lua_pushcfunction(L, ddb_av_lua_marshal_item);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);                       /* the AttributeValues, at 4 */
    lua_pushnil(L);
    while (lua_next(L, 4) != 0) {            /* the name at 5, its AttributeValue at 6 */
        size_t tl = 0;
        const char *type;
        n++;
        if (!lua_rawequal(L, 5, 2) && !(want == 2 && lua_rawequal(L, 5, 3)))
            break;
        lua_pushnil(L);
        if (lua_type(L, 6) != LUA_TTABLE || lua_next(L, 6) == 0)
            break;
        type = lua_type(L, 7) == LUA_TSTRING ? lua_tolstring(L, 7, &tl) : NULL;
        if (type == NULL || tl != 1 || (type[0] != 'S' && type[0] != 'N' && type[0] != 'B'))
            break;
        lua_settop(L, 5);
    }
    if (lua_gettop(L) != 4 || n != want)   /* left the walk early, or a name is missing */
        lua_pushboolean(L, 0);
    return 1;
}

/* core.number_canonical: a string read as DynamoDB reads N, any other value as marshal does. */
int ddb_av_lua_number_canonical(lua_State *L)
{
    av_dec x;
    av_path p;
    const char *why;
    p.len = 0;
    p.s[0] = '\0';
    if (lua_type(L, 1) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, 1, &n);
        if (ddb_av_dec_parse(s, n, &x) != 0) {
            lua_pushnil(L);
            lua_pushliteral(L, "not a number");
            return 2;
        }
        why = ddb_av_dec_check(&x);
        if (why != NULL) {
            lua_pushnil(L);
            lua_pushstring(L, why);
            return 2;
        }
    } else {
        luaL_checkany(L, 1);
        ddb_read_number(L, 1, &p, &x);
    }
    ddb_push_dec(L, &x);
    return 1;
}
