/* The module exports luaopen_ddb_core and nothing else, however it is built: what the core's
 * headers declare between DDB_HIDDEN_BEGIN and DDB_HIDDEN_END is hidden (the Makefile also
 * passes -fvisibility=hidden; LuaRocks' builtin backend cannot). */
#ifndef DDB_VISIBILITY_H
#define DDB_VISIBILITY_H

#if defined(__GNUC__)
#define DDB_HIDDEN_BEGIN _Pragma("GCC visibility push(hidden)")
#define DDB_HIDDEN_END _Pragma("GCC visibility pop")
#define DDB_EXPORT __attribute__((visibility("default")))
#else
#define DDB_HIDDEN_BEGIN
#define DDB_HIDDEN_END
#define DDB_EXPORT
#endif

#endif
