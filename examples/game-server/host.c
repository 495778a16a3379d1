/* A game server host: several POSIX threads, each with its own lua_State, each running the
 * game script (game.lua) in its own frame loop. The ddb C core is linked into this binary
 * and registered with luaL_requiref, so no ddb/core.so is loaded (package.cpath is emptied).
 *
 *   host [-t THREADS] SCRIPT [key=value ...]
 *
 * Every key=value pair reaches the script in its config table, with thread and threads.
 * Lua finds ddb and the script's modules through LUA_PATH. Prints one "report <json>" line
 * per thread and a closing "summary" line; exits 1 if a thread failed. */
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int luaopen_ddb_core(lua_State *L);   /* csrc/ddb_core.c, compiled into this binary */

#define MAX_THREADS 64
#define MAX_IDLE_MS 50

typedef struct worker {
    pthread_t tid;
    int id;
    int nthreads;
    const char *script;
    int npairs;
    char **pairs;
    long long ok;            /* updates the script reported as applied */
    int failed;
    char error[512];
} worker;

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void idle(double ms)
{
    struct timespec ts;
    if (ms > MAX_IDLE_MS)
        ms = MAX_IDLE_MS;
    if (ms <= 0)
        return;
    ts.tv_sec = 0;
    ts.tv_nsec = (long)(ms * 1e6);
    nanosleep(&ts, NULL);
}

static int traceback(lua_State *L)
{
    luaL_traceback(L, L, lua_tostring(L, 1), 1);
    return 1;
}

/* Calls the function below the nargs arguments on top; leaves nres results. */
static int pcall_tb(lua_State *L, int nargs, int nres, worker *w, const char *what)
{
    int base = lua_gettop(L) - nargs;
    int rc;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    rc = lua_pcall(L, nargs, nres, base);
    lua_remove(L, base);
    if (rc != LUA_OK) {
        snprintf(w->error, sizeof w->error, "%s: %s", what, lua_tostring(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    return 0;
}

/* The game loop of one thread: load the script, call tick() each frame until it says
 * done, idling as long as it asks, then report(). */
static void run_worker(worker *w, lua_State *L)
{
    int i, game;

    luaL_openlibs(L);
    luaL_requiref(L, "ddb.core", luaopen_ddb_core, 0);   /* package.loaded["ddb.core"] */
    lua_pop(L, 1);
    /* prove the static link: nothing may come from a shared object */
    lua_getglobal(L, "package");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);

    if (luaL_loadfile(L, w->script) != LUA_OK) {
        snprintf(w->error, sizeof w->error, "%s", lua_tostring(L, -1));
        return;
    }
    lua_createtable(L, 0, w->npairs + 2);
    lua_pushinteger(L, w->id);
    lua_setfield(L, -2, "thread");
    lua_pushinteger(L, w->nthreads);
    lua_setfield(L, -2, "threads");
    for (i = 0; i < w->npairs; i++) {
        const char *eq = strchr(w->pairs[i], '=');
        lua_pushlstring(L, w->pairs[i], (size_t)(eq - w->pairs[i]));
        lua_pushstring(L, eq + 1);
        lua_settable(L, -3);
    }
    if (pcall_tb(L, 1, 1, w, "script") != 0)
        return;
    if (!lua_istable(L, -1)) {
        snprintf(w->error, sizeof w->error, "the script must return { tick = fn, report = fn }");
        return;
    }
    game = lua_gettop(L);

    for (;;) {
        lua_getfield(L, game, "tick");
        if (pcall_tb(L, 0, 1, w, "tick") != 0)
            return;
        if (lua_toboolean(L, -1) && !lua_isnumber(L, -1)) {
            lua_pop(L, 1);
            break;
        }
        idle(lua_tonumber(L, -1));
        lua_pop(L, 1);
    }

    lua_getfield(L, game, "report");
    if (pcall_tb(L, 0, 2, w, "report") != 0)
        return;
    w->ok = (long long)lua_tointeger(L, -1);
    pthread_mutex_lock(&out_lock);
    printf("report %s\n", lua_tostring(L, -2));
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
    lua_pop(L, 2);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        snprintf(w->error, sizeof w->error, "cannot create a Lua state");
    } else {
        run_worker(w, L);
        lua_close(L);   /* collects the clients: curl handles and signers are freed here */
    }
    w->failed = w->error[0] != '\0';
    return NULL;
}

int main(int argc, char **argv)
{
    static worker workers[MAX_THREADS];
    int nthreads = 4, argi = 1, i, failed = 0;
    long long total = 0;
    double t0, elapsed;

    if (argc > 2 && strcmp(argv[1], "-t") == 0) {
        nthreads = atoi(argv[2]);
        argi = 3;
    }
    if (argi >= argc || nthreads < 1 || nthreads > MAX_THREADS) {
        fprintf(stderr, "usage: %s [-t THREADS (1-%d)] SCRIPT [key=value ...]\n", argv[0],
                MAX_THREADS);
        return 2;
    }
    for (i = argi + 1; i < argc; i++) {
        if (strchr(argv[i], '=') == NULL || argv[i][0] == '=') {
            fprintf(stderr, "%s: expected key=value, got '%s'\n", argv[0], argv[i]);
            return 2;
        }
    }

    t0 = now_ms();
    for (i = 0; i < nthreads; i++) {
        worker *w = &workers[i];
        w->id = i + 1;
        w->nthreads = nthreads;
        w->script = argv[argi];
        w->npairs = argc - argi - 1;
        w->pairs = argv + argi + 1;
        if (pthread_create(&w->tid, NULL, worker_main, w) != 0) {
            fprintf(stderr, "%s: cannot start thread %d\n", argv[0], w->id);
            return 1;
        }
    }
    for (i = 0; i < nthreads; i++) {
        pthread_join(workers[i].tid, NULL);
        if (workers[i].failed) {
            fprintf(stderr, "thread %d: %s\n", workers[i].id, workers[i].error);
            failed = 1;
        }
        total += workers[i].ok;
    }
    elapsed = now_ms() - t0;
    printf("summary {\"threads\":%d,\"updates\":%lld,\"elapsed_ms\":%.0f,\"updates_per_s\":%.1f}\n",
           nthreads, total, elapsed, elapsed > 0 ? (double)total * 1000.0 / elapsed : 0.0);
    return failed;
}
