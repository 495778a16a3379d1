/* AttributeValues compared as DynamoDB compares them (numbers by value, sets unordered), and
 * an item's size as DynamoDB counts it. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- equality and size ---- */

static int number_text_equal(lua_State *L, int a, int b)
{
    av_dec x, y;
    size_t na, nb;
    const char *sa = lua_tolstring(L, a, &na), *sb = lua_tolstring(L, b, &nb);
    if (sa == NULL || sb == NULL || ddb_av_dec_parse(sa, na, &x) || ddb_av_dec_parse(sb, nb, &y))
        return 0;
    return ddb_av_dec_equal(&x, &y);
}

/* Sets compare as sets: every element of a has an equal element in b, and sizes match
 * (a DynamoDB set has no duplicates). */
static int set_equal(lua_State *L, int a, int b, int numeric)
{
    size_t na, nb, i, j;
    if (lua_type(L, a) != LUA_TTABLE || lua_type(L, b) != LUA_TTABLE)
        return 0;
    na = lua_rawlen(L, a);
    nb = lua_rawlen(L, b);
    if (na != nb)
        return 0;
    for (i = 1; i <= na; i++) {
        int found = 0;
        lua_rawgeti(L, a, (int)i);
        for (j = 1; j <= nb && !found; j++) {
            lua_rawgeti(L, b, (int)j);
            found = numeric ? number_text_equal(L, -2, -1) : lua_rawequal(L, -2, -1);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        if (!found)
            return 0;
    }
    return 1;
}

static int map_equal(lua_State *L, int a, int b, int depth)
{
    size_t na = 0, nb = 0;
    int eq = 1;
    if (lua_type(L, a) != LUA_TTABLE || lua_type(L, b) != LUA_TTABLE)
        return 0;
    lua_pushnil(L);
    while (eq && lua_next(L, a) != 0) {
        na++;
        lua_pushvalue(L, -2);
        lua_rawget(L, b);
        eq = !lua_isnil(L, -1) && ddb_av_equal(L, lua_gettop(L) - 1, lua_gettop(L), depth + 1);
        lua_pop(L, 2);
    }
    if (!eq) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushnil(L);
    while (lua_next(L, b) != 0) {
        nb++;
        lua_pop(L, 1);
    }
    return na == nb;
}

int ddb_av_equal(lua_State *L, int a, int b, int depth)
{
    const char *ta, *tb;
    int va, vb, eq = 0;
    if (depth > AV_MAX_DEPTH + 2 || lua_type(L, a) != LUA_TTABLE || lua_type(L, b) != LUA_TTABLE)
        return 0;
    luaL_checkstack(L, 8, "AttributeValue nesting");
    lua_pushnil(L);
    if (lua_next(L, a) == 0)
        return 0;
    va = lua_gettop(L);
    lua_pushnil(L);
    if (lua_next(L, b) == 0) {
        lua_pop(L, 2);
        return 0;
    }
    vb = lua_gettop(L);
    ta = lua_tostring(L, va - 1);
    tb = lua_tostring(L, vb - 1);
    if (ta != NULL && tb != NULL && strcmp(ta, tb) == 0) {
        if (strcmp(ta, "N") == 0)
            eq = number_text_equal(L, va, vb);
        else if (strcmp(ta, "SS") == 0 || strcmp(ta, "BS") == 0)
            eq = set_equal(L, va, vb, 0);
        else if (strcmp(ta, "NS") == 0)
            eq = set_equal(L, va, vb, 1);
        else if (strcmp(ta, "M") == 0)
            eq = map_equal(L, va, vb, depth);
        else if (strcmp(ta, "L") == 0) {
            size_t n = lua_type(L, va) == LUA_TTABLE ? lua_rawlen(L, va) : 0, i;
            eq = lua_type(L, vb) == LUA_TTABLE && lua_rawlen(L, vb) == n;
            for (i = 1; eq && i <= n; i++) {
                lua_rawgeti(L, va, (int)i);
                lua_rawgeti(L, vb, (int)i);
                eq = ddb_av_equal(L, lua_gettop(L) - 1, lua_gettop(L), depth + 1);
                lua_pop(L, 2);
            }
        } else
            eq = lua_rawequal(L, va, vb);
    }
    lua_settop(L, va - 2);
    return eq;
}

int ddb_av_lua_equal(lua_State *L)
{
    lua_settop(L, 2);
    lua_pushboolean(L, ddb_av_equal(L, 1, 2, 0));
    return 1;
}

/* The size of the number text s[0..n) (NULL: not text). */
static size_t number_text_size(const char *s, size_t n)
{
    av_dec x;
    if (s == NULL || ddb_av_dec_parse(s, n, &x) != 0)
        return 21;
    /* DynamoDB: about one byte per two significant digits, plus one */
    return (size_t)(x.nd + 1) / 2 + 1;
}

static size_t number_size(lua_State *L, int idx)
{
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    return number_text_size(s, n);
}

size_t ddb_av_size(lua_State *L, int idx, int depth)
{
    size_t total = 0, n, i;
    const char *type;
    int v;
    if (depth > AV_MAX_DEPTH + 2 || lua_type(L, idx) != LUA_TTABLE)
        return 0;
    luaL_checkstack(L, 6, "AttributeValue nesting");
    lua_pushnil(L);
    if (lua_next(L, idx) == 0)
        return 0;
    v = lua_gettop(L);
    type = lua_tostring(L, v - 1);
    if (type == NULL)
        type = "";
    if (strcmp(type, "S") == 0) {
        lua_tolstring(L, v, &n);
        total = n;
    } else if (strcmp(type, "B") == 0) {
        lua_tolstring(L, v, &n);
        total = n / 4 * 3;
    } else if (strcmp(type, "N") == 0) {
        total = number_size(L, v);
    } else if (strcmp(type, "BOOL") == 0 || strcmp(type, "NULL") == 0) {
        total = 1;
    } else if (lua_type(L, v) == LUA_TTABLE) {
        int is_map = strcmp(type, "M") == 0;
        total = (strcmp(type, "L") == 0 || is_map) ? 3 : 0;
        if (is_map) {
            lua_pushnil(L);
            while (lua_next(L, v) != 0) {
                n = lua_type(L, -2) == LUA_TSTRING ? lua_rawlen(L, -2) : 0;
                total += n + 1 + ddb_av_size(L, lua_gettop(L), depth + 1);
                lua_pop(L, 1);
            }
        } else {
            size_t len = lua_rawlen(L, v);
            for (i = 1; i <= len; i++) {
                lua_rawgeti(L, v, (int)i);
                if (strcmp(type, "L") == 0)
                    total += 1 + ddb_av_size(L, lua_gettop(L), depth + 1);
                else if (strcmp(type, "NS") == 0)
                    total += number_size(L, -1);
                else {
                    lua_tolstring(L, -1, &n);
                    total += type[0] == 'B' ? n / 4 * 3 : n;
                }
                lua_pop(L, 1);
            }
        }
    }
    lua_settop(L, v - 2);
    return total;
}

/* 1 when no two members of the map node m have one name (the tables made from it would hold
 * fewer members than it: only they can say its size); 0 too when that cannot be told here. */
static int names_unique(const ddb_jnode *m)
{
    const ddb_jnode *local[64], **sorted = local, *c;
    uint32_t i, j;
    int unique;
    if (m->len <= AV_SMALL_MAP) {
        const ddb_jnode *a, *b;
        for (i = 0, a = m + 1; i < m->len; i++, a += a->skip)
            for (j = i + 1, b = a + a->skip; j < m->len; j++, b += b->skip)
                if (a->keylen == b->keylen && memcmp(a->key, b->key, a->keylen) == 0)
                    return 0;
        return 1;
    }
    if (m->len > sizeof local / sizeof local[0] &&
        (sorted = malloc(m->len * sizeof *sorted)) == NULL)
        return 0;
    for (i = 0, c = m + 1; i < m->len; i++, c += c->skip)
        sorted[i] = c;
    unique = ddb_av_members_sort(sorted, m->len);
    if (sorted != local)
        free(sorted);
    return unique;
}

/* ddb_av_size of the AttributeValue the node n holds, or (size_t)-1 when n is not the plain
 * JSON of one (more or fewer members than one, a null, a number not given as text, a map
 * naming a member twice): then only its tables can say. */
size_t ddb_av_node_size(const ddb_jnode *n, int depth)
{
    const ddb_jnode *v = n + 1, *c;
    size_t total = 0, sub;
    uint32_t i;
    if (depth > AV_MAX_DEPTH + 2 || n->type != DDB_J_OBJECT || n->len != 1)
        return (size_t)-1;
    if (v->keylen == 1 && (v->key[0] == 'S' || v->key[0] == 'B' || v->key[0] == 'N')) {
        if (v->type != DDB_J_STRING)
            return (size_t)-1;
        if (v->key[0] == 'S')
            return v->len;
        if (v->key[0] == 'B')
            return v->len / 4 * 3;
        return number_text_size(v->s, v->len);
    }
    if ((v->keylen == 4 && memcmp(v->key, "BOOL", 4) == 0) ||
        (v->keylen == 4 && memcmp(v->key, "NULL", 4) == 0))
        return v->type == DDB_J_NULL ? (size_t)-1 : 1;
    if (v->keylen == 1 && v->key[0] == 'M' && v->type == DDB_J_OBJECT) {
        if (!names_unique(v))
            return (size_t)-1;
        total = 3;
        for (i = 0, c = v + 1; i < v->len; i++, c += c->skip) {
            if ((sub = ddb_av_node_size(c, depth + 1)) == (size_t)-1)
                return sub;
            total += c->keylen + 1 + sub;
        }
        return total;
    }
    if (v->type != DDB_J_ARRAY || v->keylen < 1 || v->keylen > 2)
        return (size_t)-1;
    if (v->keylen == 1 && v->key[0] == 'L') {
        total = 3;
        for (i = 0, c = v + 1; i < v->len; i++, c += c->skip) {
            if ((sub = ddb_av_node_size(c, depth + 1)) == (size_t)-1)
                return sub;
            total += 1 + sub;
        }
        return total;
    }
    if (v->keylen != 2 || v->key[1] != 'S' ||
        (v->key[0] != 'S' && v->key[0] != 'N' && v->key[0] != 'B'))
        return (size_t)-1;
    for (i = 0, c = v + 1; i < v->len; i++, c += c->skip) {
        if (c->type != DDB_J_STRING)
            return (size_t)-1;
        if (v->key[0] == 'N')
            total += number_text_size(c->s, c->len);
        else
            total += v->key[0] == 'B' ? c->len / 4 * 3 : c->len;
    }
    return total;
}

/* ddb_av_node_size, or the size of its tables where the node alone cannot say. */
size_t ddb_av_node_size_any(lua_State *L, const ddb_jnode *n, int depth)
{
    size_t size = ddb_av_node_size(n, depth);
    if (size == (size_t)-1) {
        ddb_json_push_node(L, n);
        size = ddb_av_size(L, lua_gettop(L), depth);
        lua_pop(L, 1);
    }
    return size;
}

int ddb_av_lua_item_size(lua_State *L)
{
    size_t total = 0, n, i;
    const av_doc *doc = ddb_av_doc_test(L, 1);
    if (doc != NULL) {
        for (i = 0; i < ddb_av_doc_count(doc); i++) {
            const ddb_jnode *c = ddb_av_doc_attr(doc, i);
            total += c->keylen + ddb_av_node_size_any(L, c, 1);
        }
        lua_pushnumber(L, (lua_Number)total);
        return 1;
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        n = lua_type(L, -2) == LUA_TSTRING ? lua_rawlen(L, -2) : 0;
        total += n + ddb_av_size(L, lua_gettop(L), 1);
        lua_pop(L, 1);
    }
    lua_pushnumber(L, (lua_Number)total);
    return 1;
}
