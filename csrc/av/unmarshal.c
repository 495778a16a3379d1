/* DynamoDB AttributeValues -> plain Lua values, from Lua tables or straight from the nodes
 * jsonread.c read of an answer; and the metatables both directions share. */
#include "internal.h"
#include "../number.h"

#include <limits.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

/* The 6-bit value of a base64 digit (RFC 4648, section 4), or -1. */
static int base64_digit(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* 1 when s is the one canonical base64 text of some bytes: whole quanta, alphabet digits,
 * '=' only as the last one or two characters, padding bits zero. EVP_DecodeBlock alone
 * skips whitespace, takes '=' anywhere and decodes padding as zero bits. */
static int base64_canonical(const unsigned char *s, size_t n)
{
    size_t i, pad = 0;
    if (n % 4 != 0)
        return 0;
    if (n > 0 && s[n - 1] == '=')
        pad = n > 1 && s[n - 2] == '=' ? 2 : 1;
    for (i = 0; i < n - pad; i++)
        if (base64_digit(s[i]) < 0)
            return 0;
    if (pad == 1 && (base64_digit(s[n - 2]) & 0x3) != 0)
        return 0;
    if (pad == 2 && (base64_digit(s[n - 3]) & 0xF) != 0)
        return 0;
    return 1;
}

/* Pushes the decoded bytes, or returns -1 when s is not canonical base64. */
static int push_unbase64(lua_State *L, const char *s, size_t n)
{
    unsigned char *tmp;
    int len;
    if (!base64_canonical((const unsigned char *)s, n) || n > INT_MAX)
        return -1;
    if (n == 0) {
        lua_pushliteral(L, "");
        return 0;
    }
    tmp = lua_newuserdata(L, n);
    len = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
    if (len < 0) {
        lua_pop(L, 1);
        return -1;
    }
    /* EVP_DecodeBlock counts the padding as decoded zero bytes */
    len -= s[n - 1] == '=' ? (s[n - 2] == '=' ? 2 : 1) : 0;
    lua_pushlstring(L, (const char *)tmp, (size_t)len);
    lua_remove(L, -2);
    return 0;
}

/* ---- unmarshal ---- */

static int av_bad(lua_State *L, const char *msg)
{
    return luaL_error(L, "malformed AttributeValue: %s", msg);
}

void ddb_av_push_number_text(lua_State *L, const char *s, size_t n)
{
    av_dec x, y;
    char text[64];
    if (ddb_av_dec_parse(s, n, &x) != 0)
        av_bad(L, "N is not a number");
    if (x.nd == 0) {
#if DDB_HAS_INTEGERS
        lua_pushinteger(L, 0);
#else
        lua_pushnumber(L, 0);
#endif
        return;
    }
    if (x.exp >= x.nd && !x.overflow) {
#if DDB_HAS_INTEGERS
        if (x.exp <= 19) {
            /* accumulate negatively so the minimum integer fits */
            long long v = 0;
            long i;
            int ok = 1;
            for (i = 0; i < x.exp && ok; i++) {
                int dg = i < x.nd ? x.d[i] - '0' : 0;
                if (v < (LLONG_MIN + dg) / 10)
                    ok = 0;
                else
                    v = v * 10 - dg;
            }
            if (ok && (x.neg || v != LLONG_MIN)) {
                lua_pushinteger(L, (lua_Integer)(x.neg ? v : -v));
                return;
            }
        }
#else
        if (x.exp <= 15) {
            lua_pushnumber(L, ddb_number_read(s, n));
            return;
        }
#endif
    }
    if (!x.overflow && x.nd <= 15 && x.exp < 300 && x.exp > -300) {
        /* 15 significant digits always survive text -> double -> text (DBL_DIG), so the
         * double holds this value: no need to format it back and compare */
        double d = ddb_number_read(s, n);
        if (!isinf(d) && d != 0 && fabs(d) >= DBL_MIN) {
            lua_pushnumber(L, d);
            return;
        }
    }
    if (!x.overflow && x.nd <= 17) {
        double d = ddb_number_read(s, n);
        if (!isinf(d) && d != 0) {
            size_t tn = ddb_number_write(d, text, sizeof text);
            if (ddb_av_dec_parse(text, tn, &y) == 0 && ddb_av_dec_equal(&x, &y)) {
                lua_pushnumber(L, d);
                return;
            }
        }
    }
    lua_createtable(L, 0, 1);
    lua_pushlstring(L, s, n);
    lua_setfield(L, -2, "value");
    luaL_getmetatable(L, AV_NUMBER_MT);
    lua_setmetatable(L, -2);
}

void ddb_av_push_exact_number(lua_State *L, const char *s, size_t n, uint32_t at)
{
    av_dec x;
    const char *why = ddb_av_dec_parse(s, n, &x) != 0 ? "not a number" : ddb_av_dec_check(&x);
    if (why != NULL) {
        lua_pushlstring(L, s, n);
        luaL_error(L, "at byte %d: %s is not a number DynamoDB can store (%s)", (int)at + 1,
                   lua_tostring(L, -1), why);
    }
    ddb_av_push_number_text(L, s, n);
}

/* An AttributeValue to read: a Lua table at stack index idx (core.unmarshal), or, when j is
 * set, a node of an answer read by jsonread.c, read without building the tables in between.
 * One dispatch on the type (unmarshal_node) reads both; the accessors below are the only code
 * that knows which it has. JSON nulls are skipped, as ddb_json_decode skips them. */
typedef struct av_node {
    int idx;
    const ddb_jnode *j;
} av_node;

/* A walk over the elements of a list, set or map; elem is the current one. */
typedef struct av_iter {
    const av_node *parent;
    av_node elem;
    size_t i, n;            /* the index reached and the length (Lua: of the list) */
    const ddb_jnode *next;  /* nodes: the next child */
} av_iter;

/* The text of a string value, or NULL. A Lua table's B, N and set elements may also be
 * numbers (lua_tolstring converts them); its S must be a string, as every JSON one must. */
static const char *node_text(lua_State *L, const av_node *n, int lenient, size_t *len)
{
    if (n->j != NULL) {
        if (n->j->type != DDB_J_STRING)
            return NULL;
        *len = n->j->len;
        return n->j->s;
    }
    if (!lenient && lua_type(L, n->idx) != LUA_TSTRING)
        return NULL;
    return lua_tolstring(L, n->idx, len);
}

/* Pushes the string value n (whose text is s). */
static void push_text(lua_State *L, const av_node *n, const char *s, size_t len)
{
    if (n->j != NULL)
        lua_pushlstring(L, s, len);
    else
        lua_pushvalue(L, n->idx);
}

static int node_truth(lua_State *L, const av_node *n)
{
    return n->j != NULL ? n->j->type != DDB_J_FALSE : lua_toboolean(L, n->idx);
}

/* 1 when n is a container of the JSON type want (any table, for a Lua value). */
static int node_is(lua_State *L, const av_node *n, int want)
{
    return n->j != NULL ? n->j->type == want : lua_type(L, n->idx) == LUA_TTABLE;
}

/* How many elements n holds: a size hint for the table made of it. */
static int node_count(lua_State *L, const av_node *n, int is_list)
{
    if (n->j == NULL)
        return is_list ? (int)lua_rawlen(L, n->idx) : 0;
    return (int)n->j->len;
}

/* The type name of the AttributeValue n (its length in *tlen) and its value in *v; raises
 * when n has none. For a Lua table the name and the value are pushed, and node_close drops
 * them. */
static const char *node_open(lua_State *L, const av_node *n, av_node *v, size_t *tlen)
{
    if (n->j != NULL) {
        const ddb_jnode *c = n->j + 1;
        uint32_t i;
        if (n->j->type != DDB_J_OBJECT)
            av_bad(L, "not a table");
        luaL_checkstack(L, 6, "AttributeValue nesting");
        for (i = 0; i < n->j->len && c->type == DDB_J_NULL; i++)
            c += c->skip;
        if (i == n->j->len)
            av_bad(L, "no type");
        v->idx = 0;
        v->j = c;
        *tlen = c->keylen;
        return c->key;
    }
    if (lua_type(L, n->idx) != LUA_TTABLE)
        av_bad(L, "not a table");
    luaL_checkstack(L, 6, "AttributeValue nesting");
    lua_pushnil(L);
    if (lua_next(L, n->idx) == 0)
        av_bad(L, "no type");
    if (lua_type(L, -2) != LUA_TSTRING)
        av_bad(L, "type is not a string");
    v->idx = lua_gettop(L);
    v->j = NULL;
    return lua_tolstring(L, -2, tlen);
}

/* Leaves only the result pushed above what node_open pushed. */
static void node_close(lua_State *L, const av_node *v)
{
    if (v->j == NULL) {
        lua_replace(L, v->idx - 1);
        lua_settop(L, v->idx - 1);
    }
}

static void iter_start(lua_State *L, av_iter *it, const av_node *parent, int is_list)
{
    it->parent = parent;
    it->i = 0;
    if (parent->j != NULL) {
        it->next = parent->j + 1;
        it->n = parent->j->len;
    } else if (is_list) {
        it->n = lua_rawlen(L, parent->idx);
    } else {
        lua_pushnil(L);   /* the lua_next key */
    }
}

/* The next child of a node that is not a JSON null, or NULL at the end. */
static const ddb_jnode *node_step(av_iter *it)
{
    const ddb_jnode *c = it->next;
    for (; it->i < it->n && c->type == DDB_J_NULL; it->i++)
        c += c->skip;
    if (it->i >= it->n)
        return NULL;
    it->i++;
    it->next = c + c->skip;
    return c;
}

/* Steps to the next element of a list or set (pushed, for a Lua table); 0 at the end. */
static int list_next(lua_State *L, av_iter *it)
{
    if (it->parent->j != NULL) {
        const ddb_jnode *c = node_step(it);
        if (c == NULL)
            return 0;
        it->elem.idx = 0;
        it->elem.j = c;
        return 1;
    }
    if (it->i >= it->n)
        return 0;
    lua_rawgeti(L, it->parent->idx, (int)++it->i);
    it->elem.idx = lua_gettop(L);
    it->elem.j = NULL;
    return 1;
}

/* Drops the element below the value made of it (a Lua element was pushed). */
static void list_drop(lua_State *L, const av_iter *it)
{
    if (it->elem.j == NULL)
        lua_remove(L, -2);
}

/* Steps to the next member of a map, pushing its name (and, for a Lua table, its value);
 * 0 at the end. */
static int map_next(lua_State *L, av_iter *it)
{
    if (it->parent->j != NULL) {
        const ddb_jnode *c = node_step(it);
        if (c == NULL)
            return 0;
        lua_pushlstring(L, c->key, c->keylen);
        it->elem.idx = 0;
        it->elem.j = c;
        return 1;
    }
    if (lua_next(L, it->parent->idx) == 0)
        return 0;
    it->elem.idx = lua_gettop(L);
    it->elem.j = NULL;
    return 1;
}

/* Stores the value made of the current member in out under its name. */
static void map_store(lua_State *L, const av_iter *it, int out)
{
    if (it->elem.j == NULL) {
        /* name, value, result -> name (for lua_next), after out[name] = result */
        lua_remove(L, -2);
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
    }
    lua_rawset(L, out);
}

static void unmarshal_node(lua_State *L, const av_node *n, int depth);

static void push_map(lua_State *L, const av_node *m, int depth)
{
    av_iter it;
    int out;
    lua_createtable(L, 0, node_count(L, m, 0));
    out = lua_gettop(L);
    iter_start(L, &it, m, 0);
    while (map_next(L, &it)) {
        unmarshal_node(L, &it.elem, depth);
        map_store(L, &it, out);
    }
}

static void push_set(lua_State *L, const av_node *list, const char *mt, char type)
{
    av_iter it;
    int i = 0;
    if (!node_is(L, list, DDB_J_ARRAY))
        av_bad(L, "set is not a list");
    lua_createtable(L, node_count(L, list, 1), 0);
    iter_start(L, &it, list, 1);
    while (list_next(L, &it)) {
        size_t len;
        const char *s = node_text(L, &it.elem, 1, &len);
        if (s == NULL)
            av_bad(L, "set element is not a string");
        if (type == 'N')
            ddb_av_push_number_text(L, s, len);
        else if (type == 'B') {
            if (push_unbase64(L, s, len) != 0)
                av_bad(L, "binary set element is not base64");
        } else
            push_text(L, &it.elem, s, len);
        list_drop(L, &it);
        lua_rawseti(L, -2, ++i);
    }
    luaL_getmetatable(L, mt);
    lua_setmetatable(L, -2);
}

/* 1 when the type name t (of length n) is the literal name */
#define IS_TYPE(t, n, name) ((n) == sizeof name - 1 && memcmp((t), name, sizeof name - 1) == 0)

static void unmarshal_node(lua_State *L, const av_node *n, int depth)
{
    const char *type, *s;
    size_t len, tlen;
    av_node v;
    if (depth > AV_MAX_DEPTH + 2)
        av_bad(L, "nesting too deep");
    type = node_open(L, n, &v, &tlen);
    if (IS_TYPE(type, tlen, "S")) {
        if ((s = node_text(L, &v, 0, &len)) == NULL)
            av_bad(L, "S is not a string");
        push_text(L, &v, s, len);
    } else if (IS_TYPE(type, tlen, "N")) {
        if ((s = node_text(L, &v, 1, &len)) == NULL)
            av_bad(L, "N is not a string");
        ddb_av_push_number_text(L, s, len);
    } else if (IS_TYPE(type, tlen, "BOOL")) {
        lua_pushboolean(L, node_truth(L, &v));
    } else if (IS_TYPE(type, tlen, "NULL")) {
        lua_getfield(L, LUA_REGISTRYINDEX, AV_NULL_KEY);
    } else if (IS_TYPE(type, tlen, "B")) {
        if ((s = node_text(L, &v, 1, &len)) == NULL)
            av_bad(L, "B is not a string");
        lua_createtable(L, 0, 1);
        if (push_unbase64(L, s, len) != 0)
            av_bad(L, "B is not base64");
        lua_setfield(L, -2, "value");
        luaL_getmetatable(L, AV_BINARY_MT);
        lua_setmetatable(L, -2);
    } else if (IS_TYPE(type, tlen, "L")) {
        av_iter it;
        int i = 0;
        if (!node_is(L, &v, DDB_J_ARRAY))
            av_bad(L, "L is not a list");
        lua_createtable(L, node_count(L, &v, 1), 0);
        iter_start(L, &it, &v, 1);
        while (list_next(L, &it)) {
            unmarshal_node(L, &it.elem, depth + 1);
            list_drop(L, &it);
            lua_rawseti(L, -2, ++i);
        }
        luaL_getmetatable(L, JSON_LIST_MT);
        lua_setmetatable(L, -2);
    } else if (IS_TYPE(type, tlen, "M")) {
        if (!node_is(L, &v, DDB_J_OBJECT))
            av_bad(L, "M is not a map");
        push_map(L, &v, depth + 1);
    } else if (IS_TYPE(type, tlen, "SS")) {
        push_set(L, &v, AV_SS_MT, 'S');
    } else if (IS_TYPE(type, tlen, "NS")) {
        push_set(L, &v, AV_NS_MT, 'N');
    } else if (IS_TYPE(type, tlen, "BS")) {
        push_set(L, &v, AV_BS_MT, 'B');
    } else {
        av_bad(L, "unknown type");
    }
    node_close(L, &v);
}

int ddb_av_lua_unmarshal(lua_State *L)
{
    av_node n = { 1, NULL };
    lua_settop(L, 1);
    unmarshal_node(L, &n, 0);
    return 1;
}

int ddb_av_lua_unmarshal_item(lua_State *L)
{
    av_node n = { 1, NULL };
    const av_doc *doc = ddb_av_doc_test(L, 1);
    if (doc != NULL && ddb_av_doc_item(doc) != NULL) {
        ddb_av_push_plain_item(L, ddb_av_doc_item(doc), 1);
        return 1;
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    push_map(L, &n, 1);
    return 1;
}

void ddb_av_push_plain_item(lua_State *L, const ddb_jnode *node, int depth)
{
    av_node n = { 0, node };
    if (n.j->type != DDB_J_OBJECT)
        av_bad(L, "an item is not a map");
    push_map(L, &n, depth);
}

void ddb_av_register(lua_State *L)
{
    static const char *const names[] = {AV_NUMBER_MT, AV_BINARY_MT, AV_NULL_MT, AV_SS_MT,
                                        AV_NS_MT, AV_BS_MT, JSON_LIST_MT, JSON_MAP_MT, NULL};
    int i;
    for (i = 0; names[i] != NULL; i++) {
        ddb_compat_newmetatable(L, names[i]);
        lua_pop(L, 1);
    }
    lua_getfield(L, LUA_REGISTRYINDEX, AV_NULL_KEY);
    if (lua_isnil(L, -1)) {
        lua_newtable(L);
        luaL_getmetatable(L, AV_NULL_MT);
        lua_setmetatable(L, -2);
        lua_setfield(L, LUA_REGISTRYINDEX, AV_NULL_KEY);
    }
    lua_pop(L, 1);
}
