/* with_item's write planner: what a write sends to turn the stored item into the new one
 * (changed and removed attributes, the AttributeValues to send, the stored size). */
#include "internal.h"
#include "../number.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct name_ref {
    const char *s;
    size_t n;
} name_ref;

static int name_ref_cmp(const void *a, const void *b)
{
    const name_ref *x = a, *y = b;
    int c = memcmp(x->s, y->s, x->n < y->n ? x->n : y->n);
    if (c != 0)
        return c;
    return x->n < y->n ? -1 : (x->n > y->n);
}

/* A set of attribute names: the keys of a Lua table (at index table, 0 for none), or, with
 * table 0, a few names listed in C (what the engine's update passes, made per call without
 * tables). */
typedef struct name_set {
    int table;
    const name_ref *list;
    size_t n;
} name_set;

/* Whether the name ks[0..klen) is in the set; key: its index on the stack, or 0 when it is
 * not there. */
static int in_set(lua_State *L, const name_set *set, int key, const char *ks, size_t klen)
{
    int r;
    size_t i;
    if (set->table != 0) {
        if (key != 0)
            lua_pushvalue(L, key);
        else
            lua_pushlstring(L, ks, klen);
        lua_rawget(L, set->table);
        r = lua_toboolean(L, -1);
        lua_pop(L, 1);
        return r;
    }
    for (i = 0; i < set->n; i++)
        if (set->list[i].n == klen && memcmp(set->list[i].s, ks, klen) == 0)
            return 1;
    return 0;
}

/* Pushes the names as a list (diff_walk sorted them: the order of the expression a write
 * sends). */
static void push_names(lua_State *L, const name_ref *names, size_t n)
{
    size_t i;
    lua_createtable(L, (int)n, 0);
    for (i = 0; i < n; i++) {
        lua_pushlstring(L, names[i].s, names[i].n);
        lua_rawseti(L, -2, (int)i + 1);
    }
}

/* 1 when the plain scalar at v is provably the value of the AttributeValue at av (a string
 * equal to S, a number equal by value to N, a boolean equal to BOOL): such an attribute is
 * unchanged without being marshalled. 0 means "not provably": marshal and compare. */
/* The type name of the AttributeValue at av and its value pushed on the stack, or NULL
 * (nothing pushed) when av is not a one-member table. */
static const char *av_open(lua_State *L, int av)
{
    const char *type;
    if (lua_type(L, av) != LUA_TTABLE)
        return NULL;
    lua_pushnil(L);
    if (lua_next(L, av) == 0)
        return NULL;
    if (lua_type(L, -2) != LUA_TSTRING) {
        lua_pop(L, 2);
        return NULL;
    }
    type = lua_tostring(L, -2);
    lua_pushvalue(L, -2);
    if (lua_next(L, av) != 0) {      /* a second member: not a value this module reads */
        lua_pop(L, 4);
        return NULL;
    }
    lua_remove(L, -2);               /* leaves the value; the key string stays in av */
    return type;
}

/* The value of y (at most 15 significant digits) as the double strtod would give, or -1 when
 * only strtod can tell (ddb_number_exact). */
static int dec_to_double(const av_dec *y, double *out)
{
    unsigned long long mant = 0;
    int i;
    if (y->nd == 0) {
        *out = 0;
        return 0;
    }
    for (i = 0; i < y->nd; i++)
        mant = mant * 10 + (unsigned long long)(y->d[i] - '0');
    if (ddb_number_exact(mant, y->exp - y->nd, out) != 0)
        return -1;
    if (y->neg)
        *out = -*out;
    return 0;
}

/* 1 when the Lua number at v equals the stored N text by value (what marshalling v and
 * comparing the two decimals would say), else 0. */
static int same_number(lua_State *L, int v, const char *stored, size_t m)
{
    char text[64];
    size_t n = 0;
    av_dec x, y;
    int parsed = ddb_av_dec_parse(stored, m, &y) == 0, ok = 1;
#if DDB_HAS_INTEGERS
    if (lua_isinteger(L, v)) {
        lua_Integer i = lua_tointeger(L, v);
        /* an integer of at most 18 digits is compared as one: no text, no second parse */
        if (parsed && !y.overflow && (y.nd == 0 || (y.exp >= y.nd && y.exp <= 18))) {
            unsigned long long want = 0, got;
            long e;
            int d;
            if (y.nd == 0)
                return i == 0;
            if ((i < 0) != (y.neg != 0))
                return 0;
            for (d = 0; d < y.nd; d++)
                want = want * 10 + (unsigned long long)(y.d[d] - '0');
            for (e = y.exp - y.nd; e > 0; e--)
                want *= 10;
            got = i < 0 ? 0ULL - (unsigned long long)i : (unsigned long long)i;
            return got == want;
        }
        n = ddb_number_write_int((long long)i, text);
    } else
#endif
    {
        lua_Number d = lua_tonumber(L, v);
        ok = !isnan(d) && !isinf(d);
        if (ok && parsed && !y.overflow && y.nd <= 15 && y.exp < 300 && y.exp > -300) {
            /* a stored value of 15 significant digits or fewer is exactly one double
             * (DBL_DIG), as is the shortest text of d: equal doubles, equal values */
            double sd;
            if (dec_to_double(&y, &sd) != 0)
                sd = strtod(stored, NULL);
            if (sd == 0 || fabs(sd) >= DBL_MIN)
                return sd == d;
        }
        if (ok)
            n = ddb_number_write(d, text, sizeof text);
    }
    return ok && parsed && ddb_av_dec_parse(text, n, &x) == 0 && ddb_av_dec_check(&x) == NULL &&
           ddb_av_dec_equal(&x, &y);
}

static int same_scalar(lua_State *L, int v, int av)
{
    const char *type;
    int t = lua_type(L, v), same = 0, val;
    if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TBOOLEAN)
        return 0;
    type = av_open(L, av);
    if (type == NULL)
        return 0;
    val = lua_gettop(L);
    if (t == LUA_TSTRING && strcmp(type, "S") == 0) {
        same = lua_rawequal(L, v, val);
    } else if (t == LUA_TBOOLEAN && strcmp(type, "BOOL") == 0) {
        same = lua_type(L, val) == LUA_TBOOLEAN && lua_toboolean(L, v) == lua_toboolean(L, val);
    } else if (t == LUA_TNUMBER && strcmp(type, "N") == 0 && lua_type(L, val) == LUA_TSTRING) {
        size_t m;
        const char *stored = lua_tolstring(L, val, &m);
        same = same_number(L, v, stored, m);
    }
    lua_settop(L, val - 1);
    return same;
}

#define SAME_SET_MAX 32

/* 1 when the plain value at v is provably the value of the AttributeValue at av, as marshal
 * would make it and ddb_av_equal compare it: scalars (same_scalar), ddb.null, string sets, and
 * maps and lists of such, recursively. 0 means "not provably": marshal and compare. A value
 * that would not marshal is never "the same" (marshal then refuses it). */
static int same_value(lua_State *L, int v, int av, int depth)
{
    const char *type;
    int val, same = 0, mt;
    if (lua_type(L, v) != LUA_TTABLE)
        return same_scalar(L, v, av);
    if (depth >= AV_MAX_DEPTH)
        return 0;
    luaL_checkstack(L, 8, "AttributeValue nesting");
    type = av_open(L, av);
    if (type == NULL)
        return 0;
    val = lua_gettop(L);
    mt = lua_getmetatable(L, v);
    if (mt)
        lua_pop(L, 1);
    if (mt && ddb_json_has_mt(L, v, AV_NULL_MT)) {
        same = strcmp(type, "NULL") == 0;
    } else if (mt && ddb_json_has_mt(L, v, AV_SS_MT)) {
        /* equal sizes and each side within the other: the same set, duplicates impossible */
        size_t n = lua_rawlen(L, v), i, j;
        same = strcmp(type, "SS") == 0 && lua_type(L, val) == LUA_TTABLE &&
               lua_rawlen(L, val) == n && n > 0 && n <= SAME_SET_MAX;
        for (i = 1; same && i <= 2 * n; i++) {
            int from = i <= n ? v : val, to = i <= n ? val : v, found = 0;
            lua_rawgeti(L, from, (int)(i <= n ? i : i - n));
            if (lua_type(L, -1) != LUA_TSTRING) {
                lua_pop(L, 1);
                same = 0;
                break;
            }
            for (j = 1; j <= n && !found; j++) {
                lua_rawgeti(L, to, (int)j);
                found = lua_rawequal(L, -1, -2);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
            same = found;
        }
    } else if (!mt || ddb_json_has_mt(L, v, JSON_LIST_MT) || ddb_json_has_mt(L, v, JSON_MAP_MT)) {
        char err[128];
        size_t len = 0, n = 0, i;
        /* an unmarked table against a map: the walk below refuses any key but a string,
         * which is what telling its kind first would find (an empty one is a map) */
        int kind = !mt && strcmp(type, "M") == 0 ? 0 :
                   ddb_json_table_kind(L, v, &len, err, sizeof err);
        if (kind == 1 && strcmp(type, "L") == 0 && lua_type(L, val) == LUA_TTABLE &&
            lua_rawlen(L, val) == len) {
            same = 1;
            for (i = 1; same && i <= len; i++) {
                lua_rawgeti(L, v, (int)i);
                lua_rawgeti(L, val, (int)i);
                same = same_value(L, lua_gettop(L) - 1, lua_gettop(L), depth + 1);
                lua_pop(L, 2);
            }
        } else if (kind == 0 && strcmp(type, "M") == 0 && lua_type(L, val) == LUA_TTABLE) {
            same = 1;
            lua_pushnil(L);
            while (lua_next(L, v) != 0) {
                int k = lua_gettop(L) - 1;
                n++;
                if (same && lua_type(L, k) == LUA_TSTRING) {
                    lua_pushvalue(L, k);
                    lua_rawget(L, val);
                    same = !lua_isnil(L, -1) &&
                           same_value(L, lua_gettop(L) - 1, lua_gettop(L), depth + 1);
                    lua_pop(L, 1);
                } else {
                    same = 0;
                }
                lua_pop(L, 1);
            }
            if (same) {
                size_t m = 0;
                lua_pushnil(L);
                while (lua_next(L, val) != 0) {
                    m++;
                    lua_pop(L, 1);
                }
                same = m == n;
            }
        }
    }
    lua_settop(L, val - 1);
    return same;
}

/* The AttributeValue node n's one member (its type is the member's name), or NULL when n is
 * not an object of exactly one member that is not null. */
static const ddb_jnode *node_open(const ddb_jnode *n)
{
    return n->type == DDB_J_OBJECT && n->len == 1 && n[1].type != DDB_J_NULL ? n + 1 : NULL;
}

static int node_is(const ddb_jnode *m, const char *type)
{
    size_t n = strlen(type);
    return m->keylen == n && memcmp(m->key, type, n) == 0;
}

static int text_is(lua_State *L, int v, const ddb_jnode *str)
{
    size_t n;
    const char *s = lua_tolstring(L, v, &n);
    return s != NULL && str->type == DDB_J_STRING && str->len == n && memcmp(str->s, s, n) == 0;
}

/* A map node's members, for ddb_av_member_find (sorted by name when there are more than
 * AV_SMALL_MAP; small, of room for AV_SMALL_MAP, used when enough); 0 when a member is null or
 * a name comes twice: its tables would hold fewer members than the node, not provable here. */
static int node_members(lua_State *L, const ddb_jnode *map, const ddb_jnode **small,
                        const ddb_jnode ***out)
{
    const ddb_jnode *c = map + 1, **m = small;
    uint32_t i, j;
    if (map->len > AV_SMALL_MAP)
        m = lua_newuserdata(L, map->len * sizeof *m);
    for (i = 0; i < map->len; i++, c += c->skip) {
        if (c->type == DDB_J_NULL)
            return 0;
        m[i] = c;
    }
    if (map->len > AV_SMALL_MAP) {
        if (!ddb_av_members_sort(m, map->len))
            return 0;
    } else {
        for (i = 0; i < map->len; i++)
            for (j = i + 1; j < map->len; j++)
                if (m[i]->keylen == m[j]->keylen && memcmp(m[i]->key, m[j]->key,
                                                           m[i]->keylen) == 0)
                    return 0;
    }
    *out = m;
    return 1;
}

/* same_value against the node of an item doc (av/doc.c) instead of AttributeValue tables:
 * 1 only when the tables made from the node would make same_value say 1. */
static int same_node(lua_State *L, int v, const ddb_jnode *av, int depth)
{
    const ddb_jnode *m = node_open(av), *val, *c;
    int t = lua_type(L, v), same = 0, mt, top = lua_gettop(L);
    if (m == NULL)
        return 0;
    val = m;
    if (t == LUA_TSTRING)
        return node_is(m, "S") && text_is(L, v, val);
    if (t == LUA_TBOOLEAN)
        return node_is(m, "BOOL") && (val->type == DDB_J_TRUE || val->type == DDB_J_FALSE) &&
               lua_toboolean(L, v) == (val->type == DDB_J_TRUE);
    if (t == LUA_TNUMBER) {
        char text[AV_DIGIT_BUF];
        /* same_number reads a NUL-terminated text (strtod) */
        if (!node_is(m, "N") || val->type != DDB_J_STRING || val->len >= sizeof text)
            return 0;
        memcpy(text, val->s, val->len);
        text[val->len] = '\0';
        return same_number(L, v, text, val->len);
    }
    if (t != LUA_TTABLE || depth >= AV_MAX_DEPTH)
        return 0;
    luaL_checkstack(L, 8, "AttributeValue nesting");
    mt = lua_getmetatable(L, v);
    if (mt)
        lua_pop(L, 1);
    if (mt && ddb_json_has_mt(L, v, AV_NULL_MT)) {
        same = node_is(m, "NULL");
    } else if (mt && ddb_json_has_mt(L, v, AV_SS_MT)) {
        size_t n = lua_rawlen(L, v), i;
        uint32_t j;
        same = node_is(m, "SS") && val->type == DDB_J_ARRAY && val->len == n && n > 0 &&
               n <= SAME_SET_MAX;
        for (i = 1; same && i <= n; i++) {      /* each of v's among the node's */
            int found = 0;
            lua_rawgeti(L, v, (int)i);
            if (lua_type(L, -1) == LUA_TSTRING)
                for (j = 0, c = val + 1; !found && j < val->len; j++, c += c->skip)
                    found = text_is(L, -1, c);
            lua_pop(L, 1);
            same = found;
        }
        for (j = 0, c = val + 1; same && j < val->len; j++, c += c->skip) {
            int found = 0;                      /* and each of the node's among v's */
            for (i = 1; !found && i <= n; i++) {
                lua_rawgeti(L, v, (int)i);
                found = text_is(L, -1, c);
                lua_pop(L, 1);
            }
            same = found;
        }
    } else if (!mt || ddb_json_has_mt(L, v, JSON_LIST_MT) || ddb_json_has_mt(L, v, JSON_MAP_MT)) {
        char err[128];
        size_t len = 0, n = 0, i;
        int kind = !mt && node_is(m, "M") ? 0 : ddb_json_table_kind(L, v, &len, err, sizeof err);
        if (kind == 1 && node_is(m, "L") && val->type == DDB_J_ARRAY && val->len == len) {
            same = 1;
            for (i = 1, c = val + 1; same && i <= len; i++, c += c->skip) {
                lua_rawgeti(L, v, (int)i);
                same = same_node(L, lua_gettop(L), c, depth + 1);
                lua_pop(L, 1);
            }
        } else if (kind == 0 && node_is(m, "M") && val->type == DDB_J_OBJECT) {
            const ddb_jnode *small[AV_SMALL_MAP], **members = NULL;
            same = node_members(L, val, small, &members);
            lua_pushnil(L);
            while (same && lua_next(L, v) != 0) {
                size_t klen = 0;
                const char *ks = lua_type(L, -2) == LUA_TSTRING ?
                                 lua_tolstring(L, -2, &klen) : NULL;
                n++;
                c = ks != NULL ? ddb_av_member_find(members, val->len, ks, klen) : NULL;
                same = c != NULL && same_node(L, lua_gettop(L), c, depth + 1);
                lua_pop(L, 1);
            }
            same = same && n == val->len;
        }
    }
    lua_settop(L, top);
    return same;
}

/* What turning a stored item into a new one takes (diff_walk): the attributes to set and to
 * remove (names pointing into the item, the doc or the stored table, which the caller's stack
 * keeps alive), the AttributeValues made (the table at avs), and the size as stored without
 * the override's own values. */
typedef struct diff {
    name_ref *sets, *removes;
    size_t nsets, nremoves, total;
    int avs;
} diff;

/* One walk of diff_walk's: 1 when more attributes changed than the scratch has room for
 * (cap; nothing is recorded past it), else 0. */
static int walk(lua_State *L, int old, const av_doc *doc, int item, const name_set *skip,
                const name_set *over, int keep, size_t nold, size_t cap, unsigned char *seen,
                diff *d)
{
    size_t i;
    int overflow = 0;
    av_path p;

    p.len = 0;
    p.s[0] = '\0';
    d->nsets = d->nremoves = d->total = 0;
    lua_createtable(L, 0, 4);
    d->avs = lua_gettop(L);

    lua_pushnil(L);
    while (lua_next(L, item) != 0) {
        int k = lua_gettop(L) - 1, v = lua_gettop(L), o, changed, skipped;
        size_t klen, depth_mark;
        const char *ks;
        if (lua_type(L, k) != LUA_TSTRING)
            ddb_av_fail(L, &p, "item attribute names must be strings");
        ks = lua_tolstring(L, k, &klen);
        depth_mark = ddb_path_push_key(&p, ks, klen);
        if (klen == 0)
            ddb_av_fail(L, &p, "attribute name is empty");
        ddb_check_text(L, &p, ks, klen);
        skipped = in_set(L, skip, k, ks, klen);
        if (doc != NULL) {
            size_t at = ddb_av_doc_find_at(doc, ks, klen);
            const ddb_jnode *on = at < nold ? ddb_av_doc_attr(doc, at) : NULL;
            if (on != NULL && seen != NULL)
                seen[at] = 1;
            if (keep && on != NULL && same_node(L, v, on, 1)) {
                if (!in_set(L, over, k, ks, klen))
                    d->total += klen + ddb_av_node_size_any(L, on, 1);
                ddb_path_pop(&p, depth_mark);
                lua_settop(L, k);
                continue;
            }
            if (on != NULL)
                ddb_json_push_node(L, on);      /* changed, or not provably the same */
            else
                lua_pushnil(L);
        } else {
            lua_pushvalue(L, k);
            if (old)
                lua_rawget(L, old);
            else
                lua_pushnil(L);
        }
        o = lua_gettop(L);
        if (keep && !lua_isnil(L, o) && same_value(L, v, o, 1)) {
            /* unchanged: the stored value's size, no AttributeValue made */
            if (!in_set(L, over, k, ks, klen))
                d->total += klen + ddb_av_size(L, o, 1);
        } else {
            ddb_marshal_value(L, v, &p, 1);                                 /* the AV at o + 1 */
            changed = lua_isnil(L, o) || !ddb_av_equal(L, o, o + 1, 0);
            if (changed && !skipped) {
                if (d->nsets == cap) {
                    overflow = 1;
                } else {
                    d->sets[d->nsets].s = ks;
                    d->sets[d->nsets].n = klen;
                    d->nsets++;
                }
            }
            if (!in_set(L, over, k, ks, klen))
                d->total += klen + ddb_av_size(L, o + 1, 1);
            if (changed || skipped || !keep) {
                lua_pushvalue(L, k);
                lua_pushvalue(L, o + 1);
                lua_rawset(L, d->avs);
            }
        }
        ddb_path_pop(&p, depth_mark);
        lua_settop(L, k);
    }
    if (old) {
        lua_pushnil(L);
        while (lua_next(L, old) != 0) {
            int k = lua_gettop(L) - 1, absent;
            size_t klen = 0;
            const char *ks = lua_type(L, k) == LUA_TSTRING ? lua_tolstring(L, k, &klen) : NULL;
            if (ks == NULL)
                luaL_error(L, "plan_diff: stored attribute names must be strings");
            lua_pushvalue(L, k);
            lua_rawget(L, item);
            absent = lua_isnil(L, -1);
            lua_pop(L, 1);
            if (absent && !in_set(L, skip, k, ks, klen)) {
                d->removes[d->nremoves].s = ks;
                d->removes[d->nremoves].n = klen;
                d->nremoves++;
            } else if (absent && keep && !in_set(L, over, k, ks, klen)) {
                d->total += klen + ddb_av_size(L, lua_gettop(L), 1);
            }
            lua_pop(L, 1);
        }
    }
    for (i = 0; doc != NULL && i < nold; i++) {
        const ddb_jnode *c = ddb_av_doc_attr(doc, i);
        int k = 0, absent;
        if (seen != NULL) {
            absent = !seen[i];
        } else {
            lua_pushlstring(L, c->key, c->keylen);
            k = lua_gettop(L);
            lua_pushvalue(L, k);
            lua_rawget(L, item);
            absent = lua_isnil(L, -1);
            lua_pop(L, 1);
        }
        if (absent && !in_set(L, skip, k, c->key, c->keylen)) {
            d->removes[d->nremoves].s = c->key;       /* the doc keeps the name alive */
            d->removes[d->nremoves].n = c->keylen;
            d->nremoves++;
        } else if (absent && keep && !in_set(L, over, k, c->key, c->keylen)) {
            d->total += c->keylen + ddb_av_node_size_any(L, c, 1);
        }
        if (k != 0)
            lua_pop(L, 1);
    }
    return overflow;
}

/* The walk core.plan_diff and core.update_plan share. old: the stored item as a table (its
 * index, 0 when none), or doc; item: the new item's index; small: scratch for a usual item.
 * Pushes the avs table (and, for a big item, the scratch's userdata) and raises, naming the
 * attribute, on a value that cannot be stored. */
static void diff_walk(lua_State *L, int old, const av_doc *doc, int item, const name_set *skip,
                      const name_set *over, int keep, name_ref *small, size_t nsmall, diff *d)
{
    size_t nnew = 0, nold = 0;
    unsigned char seen_local[64], *seen = seen_local;
    int base = lua_gettop(L), regular = doc != NULL && ddb_av_doc_regular(doc), big = 1;

    if (old) {
        lua_pushnil(L);
        while (lua_next(L, old) != 0) {
            nold++;
            lua_pop(L, 1);
        }
    } else if (doc != NULL) {
        nold = ddb_av_doc_count(doc);
    }
    /* scratch on the stack for a usual item; item's attributes are counted only when more
     * of them changed than that has room for, and the walk is made again with scratch in
     * userdata (collected should anything below raise). With a regular doc, a mark per
     * stored attribute that item holds too: the stored ones it lacks are found without
     * looking each up in item. */
    if (nold < nsmall && nold <= sizeof seen_local) {
        d->removes = small;
        d->sets = small + nold;
        if (regular)
            memset(seen, 0, nold);
        if (!walk(L, old, doc, item, skip, over, keep, nold, nsmall - nold,
                  regular ? seen : NULL, d))
            big = 0;
        else
            lua_settop(L, base);
    }
    if (big) {
        lua_pushnil(L);
        while (lua_next(L, item) != 0) {
            nnew++;
            lua_pop(L, 1);
        }
        d->removes = lua_newuserdata(L, (nnew + nold) * sizeof *d->sets + nold);
        d->sets = d->removes + nold;
        seen = (unsigned char *)(d->sets + nnew);
        if (regular)
            memset(seen, 0, nold);
        walk(L, old, doc, item, skip, over, keep, nold, nnew, regular ? seen : NULL, d);
    }
    if (d->nsets > 1)
        qsort(d->sets, d->nsets, sizeof *d->sets, name_ref_cmp);
    if (d->nremoves > 1)
        qsort(d->removes, d->nremoves, sizeof *d->removes, name_ref_cmp);
}

/* core.plan_diff(old, item, skip, override, keep_old) -> sets, avs, removes, size
 * What a write has to send to turn the stored item old (AttributeValues, or nil when none
 * is stored) into item (plain values, as the caller's function returned them).
 * sets: the attributes of item whose values differ from old's (numbers by value, sets
 * unordered), sorted; removes: those of old that item lacks, sorted; neither lists the
 * names in the set skip (key, version, tokens: the caller writes those). avs: name ->
 * AttributeValue for every attribute in sets and every skipped one that item holds and
 * that is not provably the stored value (same_value); with keep_old false (a put, which
 * sends the whole item) for every attribute of item.
 * size: the stored item's size as DynamoDB counts it: item's attributes, old's that stay
 * when keep_old is true (an update), and the values of override (name -> AttributeValue) in
 * place of either. A value that cannot be stored raises, naming the attribute. */
int ddb_av_lua_plan_diff(lua_State *L)
{
    name_set skip = { 0, NULL, 0 }, over = { 0, NULL, 0 };
    name_ref small[64];
    diff d;
    const av_doc *doc;

    lua_settop(L, 5);
    doc = ddb_av_doc_test(L, 1);      /* the stored item as an answer's nodes (av/doc.c) */
    luaL_checktype(L, 2, LUA_TTABLE);
    skip.table = lua_istable(L, 3) ? 3 : 0;
    over.table = lua_istable(L, 4) ? 4 : 0;
    diff_walk(L, lua_istable(L, 1) ? 1 : 0, doc, 2, &skip, &over, lua_toboolean(L, 5), small,
              sizeof small / sizeof small[0], &d);
    if (over.table) {
        lua_pushnil(L);
        while (lua_next(L, over.table) != 0) {
            if (lua_type(L, -2) == LUA_TSTRING)
                d.total += lua_rawlen(L, -2) + ddb_av_size(L, lua_gettop(L), 1);
            lua_pop(L, 1);
        }
    }
    push_names(L, d.sets, d.nsets);
    lua_pushvalue(L, d.avs);
    push_names(L, d.removes, d.nremoves);
    lua_pushnumber(L, (lua_Number)d.total);
    return 4;
}

/* ---- the UpdateItem a write sends ---- */

#define ADD_LIT(b, s) buf_add((b), (s), sizeof(s) - 1)

/* The placeholder prefix followed by i ("#n3", ":v12"), quoted when quote is set; by hand,
 * as snprintf would take as long as the rest of the body. */
static int add_placeholder(buf *b, const char *prefix, size_t i, int quote)
{
    char t[32], *p = t + sizeof t;
    size_t n;
    if (quote)
        *--p = '"';
    do {
        *--p = (char)('0' + i % 10);
        i /= 10;
    } while (i > 0);
    *--p = prefix[1];
    *--p = prefix[0];
    if (quote)
        *--p = '"';
    n = (size_t)(t + sizeof t - p);
    return buf_add(b, p, n);
}

/* ,placeholder: before a member (no comma before the first) */
static int add_key(buf *b, const char *prefix, size_t i)
{
    return (i > 1 && buf_addc(b, ',')) || add_placeholder(b, prefix, i, 1) || buf_addc(b, ':');
}

/* ,placeholder:value with the value at idx encoded as JSON */
static int add_member(lua_State *L, buf *b, const char *prefix, size_t i, int idx, char *err,
                      size_t errlen)
{
    return add_key(b, prefix, i) ? -1 : ddb_json_encode(L, idx, b, err, errlen);
}

/* ,"#ni":"name" for a name given as its bytes */
static int add_name(buf *b, size_t i, const name_ref *name, char *err, size_t errlen)
{
    return add_key(b, "#n", i) ? -1 : ddb_json_add_string(b, name->s, name->n, err, errlen);
}

/* How the condition's symbolic placeholders (lua/ddb/engine/plan.lua's condition builder)
 * are numbered in the request: #V and #T are the SET clause's own for the version and the
 * tokens, #c<i> and :c<i> come after the update's names and values. */
typedef struct numbering {
    size_t version, tokens;     /* 0: the request has no such placeholder */
    size_t names, values;       /* how many of each the update itself uses */
} numbering;

/* The placeholder at s[0..n) (a '#' or ':' first): its prefix and number in the request and
 * the bytes it takes; 0 when it is none the builder makes (only #c and :c with own set). */
static size_t placeholder_of(const char *s, size_t n, const numbering *nb, int own,
                             const char **prefix, size_t *num)
{
    size_t i = 2, v = 0;
    if (n >= 2 && s[0] == '#' && !own && (s[1] == 'V' || (s[1] == 'T' && nb->tokens))) {
        *prefix = "#n";
        *num = s[1] == 'V' ? nb->version : nb->tokens;
        return 2;
    }
    if (n < 3 || (s[0] != '#' && s[0] != ':') || s[1] != 'c' || s[2] < '1' || s[2] > '9')
        return 0;
    for (; i < n && i < 12 && s[i] >= '0' && s[i] <= '9'; i++)
        v = v * 10 + (size_t)(s[i] - '0');
    *prefix = s[0] == '#' ? "#n" : ":v";
    *num = v + (s[0] == '#' ? nb->names : nb->values);
    return i;
}

/* The condition with its placeholders numbered for the request. */
static int add_condition(buf *b, const char *s, size_t n, const numbering *nb, char *err,
                         size_t errlen)
{
    size_t i = 0, start = 0;
    while (i < n) {
        const char *prefix;
        size_t num, used;
        if (s[i] != '#' && s[i] != ':') {
            i++;
            continue;
        }
        used = placeholder_of(s + i, n - i, nb, 0, &prefix, &num);
        if (used == 0) {
            snprintf(err, errlen, "the condition holds a placeholder the update does not "
                     "number (at byte %zu)", i + 1);
            return -1;
        }
        if (buf_add(b, s + start, i - start) || add_placeholder(b, prefix, num, 0))
            return -1;
        i += used;
        start = i;
    }
    return buf_add(b, s + start, n - start);
}

/* The members of the condition's own names or values (the table at idx), numbered, each
 * after a comma. */
static int add_condition_members(lua_State *L, buf *b, int idx, const numbering *nb,
                                 char *err, size_t errlen)
{
    if (!lua_istable(L, idx))
        return 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        size_t n = 0, num;
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &n) : NULL,
                   *prefix;
        if (k == NULL || placeholder_of(k, n, nb, 1, &prefix, &num) != n) {
            snprintf(err, errlen, "the condition names a placeholder the update does not "
                     "number");
            lua_pop(L, 2);
            return -1;
        }
        if (buf_addc(b, ',') || add_placeholder(b, prefix, num, 1) || buf_addc(b, ':') ||
            ddb_json_encode(L, lua_gettop(L), b, err, errlen)) {
            lua_pop(L, 2);
            return -1;
        }
        lua_pop(L, 1);
    }
    return 0;
}

/* The UpdateExpression of an update: "SET #n1 = :v1, ..., #nk = :vk" over the sets, the
 * version and the tokens, then " REMOVE #n(k+1), ..." over the removals. */
static int update_expression(buf *b, size_t nsets, size_t nremoves)
{
    size_t i;
    if (ADD_LIT(b, "SET "))
        return -1;
    for (i = 1; i <= nsets; i++)
        if ((i > 1 && ADD_LIT(b, ", ")) || add_placeholder(b, "#n", i, 0) ||
            ADD_LIT(b, " = ") || add_placeholder(b, ":v", i, 0))
            return -1;
    for (i = 1; i <= nremoves; i++)
        if ((i > 1 ? ADD_LIT(b, ", ") : ADD_LIT(b, " REMOVE ")) ||
            add_placeholder(b, "#n", nsets + i, 0))
            return -1;
    return 0;
}

/* {"TableName":table,"Key":key: how the engine's requests for one item begin (the table's
 * name and the key's AttributeValues at those stack indices). */
static int add_table_key(lua_State *L, buf *b, int table, int key, char *err, size_t errlen)
{
    return ADD_LIT(b, "{\"TableName\":") || ddb_json_encode(L, table, b, err, errlen) ||
           ADD_LIT(b, ",\"Key\":") || ddb_json_encode(L, key, b, err, errlen);
}

/* core.get_body(table, key) -> body | nil, why
 * The JSON body of the strongly consistent GetItem the engine reads an item with (key: its
 * AttributeValues), written at once rather than encoded from a request table. */
int ddb_av_lua_get_body(lua_State *L)
{
    buf out;
    char local[512], err[160];
    int rc;
    luaL_checktype(L, 1, LUA_TSTRING);
    luaL_checktype(L, 2, LUA_TTABLE);
    err[0] = '\0';
    ddb_buf_init_in(&out, local, sizeof local);
    if (add_table_key(L, &out, 1, 2, err, sizeof err) ||
        ADD_LIT(&out, ",\"ConsistentRead\":true,\"ReturnConsumedCapacity\":\"TOTAL\"}")) {
        lua_pushnil(L);
        lua_pushstring(L, err[0] ? err : "out of memory");
        rc = 2;
    } else {
        lua_pushlstring(L, out.data, out.len);
        rc = 1;
    }
    ddb_buf_free(&out);
    return rc;
}

/* nil, why, detail */
static int refuse(lua_State *L, const char *why, const char *detail)
{
    lua_pushnil(L);
    lua_pushstring(L, why);
    lua_pushstring(L, detail);
    return 3;
}

/* nil, which, its bytes, the item's size: an expression over DynamoDB's limit */
static int too_long(lua_State *L, const char *which, size_t len, size_t size)
{
    lua_pushnil(L);
    lua_pushstring(L, which);
    lua_pushinteger(L, (lua_Integer)len);
    lua_pushnumber(L, (lua_Number)size);
    return 4;
}

/* The first key attribute (names: their names, key: their AttributeValues) for which the
 * diff made an AttributeValue (avs) other than the key's own, or NULL. */
static const char *changed_key(lua_State *L, int key, int names, int avs)
{
    size_t i, nkeys = (size_t)lua_rawlen(L, names);
    int top = lua_gettop(L);
    for (i = 1; i <= nkeys; i++) {
        lua_rawgeti(L, names, (int)i);
        lua_pushvalue(L, top + 1);
        lua_rawget(L, avs);
        lua_pushvalue(L, top + 1);
        lua_rawget(L, key);
        if (!lua_isnil(L, top + 2) && !ddb_av_equal(L, top + 2, top + 3, 0)) {
            const char *name = lua_tostring(L, top + 1);    /* names keeps it */
            lua_settop(L, top);
            return name;
        }
        lua_settop(L, top);
    }
    return NULL;
}

/* 1 when the diff made an AttributeValue (avs) for the version attribute (its name at
 * version) that is not the stored one (old, at its index, or doc), or there is none stored. */
static int changed_version(lua_State *L, int old, const av_doc *doc, int version, int avs)
{
    int top = lua_gettop(L), changed;
    lua_pushvalue(L, version);
    lua_rawget(L, avs);
    if (lua_isnil(L, -1)) {
        lua_settop(L, top);
        return 0;
    }
    if (doc != NULL) {
        size_t n;
        const char *v = lua_tolstring(L, version, &n);
        const ddb_jnode *on = ddb_av_doc_find(doc, v, n);
        if (on != NULL)
            ddb_json_push_node(L, on);
        else
            lua_pushnil(L);
    } else if (old) {
        lua_pushvalue(L, version);
        lua_rawget(L, old);
    } else {
        lua_pushnil(L);
    }
    changed = lua_isnil(L, -1) || !ddb_av_equal(L, top + 1, top + 2, 0);
    lua_settop(L, top);
    return changed;
}

/* core.update_plan(table, key, names, old, item, version, version_av, tokens, tokens_av,
 *                  condition, cond_names, cond_values, returns, max_expression)
 *   -> body, size | false, size | nil, why, detail
 * The UpdateItem that turns the stored item old (an item doc, AttributeValues, or nil when
 * none is stored) into item (plain values, as the caller's function returned them), as
 * lua/ddb/engine/plan.lua plans an update: the attributes that changed (core.plan_diff's
 * sets) as #n1 = :v1 ..., then the version attribute (named version) at version_av, then,
 * when tokens_av is given, the tokens attribute (named tokens) at it, then the removals, as
 * names alone. The key (names: its attribute names; key: its AttributeValues), the version
 * and the tokens are the write's own: never set or removed as the item's. condition is
 * rules.condition's, written with plan.lua's symbolic placeholders (#V, #T, #c<i>, :c<i>;
 * cond_names and cond_values): they are numbered here after the update's own. ReturnValues
 * is returns when given. size: the item as stored after the write, as DynamoDB counts it.
 * false: nothing changed (old is given, nothing is set or removed). Else nil and why:
 * "key" or "version" (detail: the name) when item holds another value of it than the
 * stored one; "UpdateExpression" or "ConditionExpression" (detail: its bytes, then the size)
 * over max_expression; "encode" (detail: why) for a request that cannot be written. A value that
 * cannot be stored raises, naming the attribute. */
int ddb_av_lua_update_plan(lua_State *L)
{
    name_ref small[64], own[4];
    name_set skip = { 0, own, 0 }, over = { 0, own, 0 };
    numbering nb;
    diff d;
    buf out, ex, cond;
    char local[2048], exlocal[512], condlocal[256], err[160];
    const av_doc *doc;
    const char *key_changed;
    size_t nkeys, nnames, i, max, size;
    int old, tokens, rc = -1;

    luaL_checktype(L, 1, LUA_TSTRING);
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checktype(L, 3, LUA_TTABLE);
    luaL_checktype(L, 5, LUA_TTABLE);
    luaL_checktype(L, 6, LUA_TSTRING);
    luaL_checktype(L, 7, LUA_TTABLE);
    luaL_checktype(L, 8, LUA_TSTRING);
    luaL_checktype(L, 10, LUA_TSTRING);
    max = (size_t)luaL_checkinteger(L, 14);
    lua_settop(L, 14);
    doc = ddb_av_doc_test(L, 4);
    old = lua_istable(L, 4) ? 4 : 0;
    tokens = !lua_isnil(L, 9);
    if (tokens)
        luaL_checktype(L, 9, LUA_TTABLE);
    nkeys = (size_t)lua_rawlen(L, 3);
    luaL_argcheck(L, nkeys == 1 || nkeys == 2, 3, "one or two key attribute names expected");

    /* the write's own attributes, skipped by the diff: the version and the tokens, stored as
     * given in place of item's or old's (over: the first one, or two), and the key */
    own[0].s = lua_tolstring(L, 6, &own[0].n);
    own[1].s = lua_tolstring(L, 8, &own[1].n);
    over.n = tokens ? 2 : 1;
    size = own[0].n + ddb_av_size(L, 7, 1) + (tokens ? own[1].n + ddb_av_size(L, 9, 1) : 0);
    for (i = 1; i <= nkeys; i++) {
        lua_rawgeti(L, 3, (int)i);
        luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 3, "key attribute names expected");
        own[1 + i].s = lua_tolstring(L, -1, &own[1 + i].n);     /* names keeps it */
        lua_pop(L, 1);
    }
    skip.n = 2 + nkeys;
    diff_walk(L, old, doc, 5, &skip, &over, 1, small, sizeof small / sizeof small[0], &d);
    size += d.total;
    for (i = 1; i <= nkeys; i++) {
        /* a key attribute item lacks is stored as the key's (the diff counted item's) */
        lua_rawgeti(L, 3, (int)i);
        lua_pushvalue(L, -1);
        lua_rawget(L, 5);
        if (lua_isnil(L, -1)) {
            lua_pushvalue(L, -2);
            lua_rawget(L, 2);
            size += own[1 + i].n + ddb_av_size(L, lua_gettop(L), 1);
        }
        lua_settop(L, d.avs);
    }
    key_changed = changed_key(L, 2, 3, d.avs);
    if (key_changed != NULL)
        return refuse(L, "key", key_changed);
    if (changed_version(L, old, doc, 6, d.avs))
        return refuse(L, "version", own[0].s);
    if ((old || doc != NULL) && d.nsets == 0 && d.nremoves == 0) {
        lua_pushboolean(L, 0);
        lua_pushnumber(L, (lua_Number)size);
        return 2;
    }

    nnames = d.nsets + 1 + (size_t)tokens;      /* placeholders of the SET clause */
    nb.version = d.nsets + 1;
    nb.tokens = tokens ? d.nsets + 2 : 0;
    nb.values = nnames;
    nb.names = nnames + d.nremoves;
    err[0] = '\0';
    ddb_buf_init_in(&ex, exlocal, sizeof exlocal);
    ddb_buf_init_in(&cond, condlocal, sizeof condlocal);
    ddb_buf_init_in(&out, local, sizeof local);
    if (update_expression(&ex, nnames, d.nremoves) != 0)
        goto nomem;
    if (ex.len > max) {
        rc = too_long(L, "UpdateExpression", ex.len, size);
        goto done;
    }
    {
        size_t n;
        const char *c = lua_tolstring(L, 10, &n);
        if (add_condition(&cond, c, n, &nb, err, sizeof err) != 0)
            goto fail;
    }
    if (cond.len > max) {
        rc = too_long(L, "ConditionExpression", cond.len, size);
        goto done;
    }
    if (add_table_key(L, &out, 1, 2, err, sizeof err) ||
        ADD_LIT(&out, ",\"UpdateExpression\":\"") || buf_add(&out, ex.data, ex.len) ||
        ADD_LIT(&out, "\",\"ConditionExpression\":") ||
        ddb_json_add_string(&out, cond.data, cond.len, err, sizeof err) ||
        ADD_LIT(&out, ",\"ExpressionAttributeNames\":{"))
        goto fail;
    for (i = 0; i < d.nsets; i++)
        if (add_name(&out, i + 1, &d.sets[i], err, sizeof err))
            goto fail;
    if (add_member(L, &out, "#n", nb.version, 6, err, sizeof err) ||
        (tokens && add_member(L, &out, "#n", nb.tokens, 8, err, sizeof err)))
        goto fail;
    for (i = 0; i < d.nremoves; i++)
        if (add_name(&out, nnames + i + 1, &d.removes[i], err, sizeof err))
            goto fail;
    if (add_condition_members(L, &out, 11, &nb, err, sizeof err) ||
        ADD_LIT(&out, "},\"ExpressionAttributeValues\":{"))
        goto fail;
    for (i = 0; i < d.nsets; i++) {
        lua_pushlstring(L, d.sets[i].s, d.sets[i].n);
        lua_rawget(L, d.avs);
        if (add_member(L, &out, ":v", i + 1, lua_gettop(L), err, sizeof err))
            goto fail;
        lua_pop(L, 1);
    }
    if (add_member(L, &out, ":v", nb.version, 7, err, sizeof err) ||
        (tokens && add_member(L, &out, ":v", nb.tokens, 9, err, sizeof err)) ||
        add_condition_members(L, &out, 12, &nb, err, sizeof err) ||
        ADD_LIT(&out, "},\"ReturnValuesOnConditionCheckFailure\":\"ALL_OLD\","
                "\"ReturnConsumedCapacity\":\"TOTAL\""))
        goto fail;
    if (!lua_isnil(L, 13) && (ADD_LIT(&out, ",\"ReturnValues\":") ||
                              ddb_json_encode(L, 13, &out, err, sizeof err)))
        goto fail;
    if (buf_addc(&out, '}'))
        goto nomem;
    lua_pushlstring(L, out.data, out.len);
    lua_pushnumber(L, (lua_Number)size);
    rc = 2;
    goto done;
nomem:
    snprintf(err, sizeof err, "out of memory");
fail:
    lua_settop(L, d.avs);
    rc = refuse(L, "encode", err[0] ? err : "out of memory");
done:
    ddb_buf_free(&cond);
    ddb_buf_free(&ex);
    ddb_buf_free(&out);
    return rc;
}
