/* A program that embeds Lua, draws write tokens, forks and draws more in both processes: the
 * child must never repeat the parent's (the tokens' random bytes are drawn in batches, see
 * csrc/tokens.c). It forks again after the module is unloaded (lua_close), when no handler of
 * the module's may be left to run, and once more with the module loaded anew.
 * Usage: fork_host <path of ddb/core.so's directory pattern, as in package.cpath>. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#define N 40
#define LEN 12   /* random_token(9): 12 characters */

static lua_State *open_core(const char *cpath)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_pushstring(L, cpath);
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);
    if (luaL_dostring(L, "core = require 'ddb.core'") != 0) {
        fprintf(stderr, "require: %s\n", lua_tostring(L, -1));
        exit(1);
    }
    return L;
}

static void draw(lua_State *L, char out[N][LEN + 1])
{
    int i;
    for (i = 0; i < N; i++) {
        size_t n;
        const char *t;
        lua_getglobal(L, "core");
        lua_getfield(L, -1, "random_token");
        lua_pushinteger(L, 9);
        if (lua_pcall(L, 1, 1, 0) != 0) {
            fprintf(stderr, "random_token: %s\n", lua_tostring(L, -1));
            exit(1);
        }
        t = lua_tolstring(L, -1, &n);
        if (t == NULL || n != LEN) {
            fprintf(stderr, "random_token: not a %d-character token\n", LEN);
            exit(1);
        }
        memcpy(out[i], t, LEN + 1);
        lua_pop(L, 2);
    }
}

/* Draws in the child and in the parent after a fork; fails on a token drawn by both. */
static void fork_and_compare(lua_State *L, const char *when)
{
    static char mine[N][LEN + 1], theirs[N][LEN + 1];
    int fds[2], status, i, j;
    pid_t pid;
    if (pipe(fds) != 0 || (pid = fork()) < 0) {
        perror("pipe/fork");
        exit(1);
    }
    if (pid == 0) {
        close(fds[0]);
        draw(L, mine);
        if (write(fds[1], mine, sizeof mine) != (ssize_t)sizeof mine)
            _exit(2);
        _exit(0);
    }
    close(fds[1]);
    draw(L, mine);
    for (i = 0; i < (int)sizeof theirs;) {
        ssize_t k = read(fds[0], (char *)theirs + i, sizeof theirs - (size_t)i);
        if (k <= 0) {
            fprintf(stderr, "%s: the child sent %d bytes of its tokens\n", when, i);
            exit(1);
        }
        i += (int)k;
    }
    close(fds[0]);
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "%s: the child failed (status %d)\n", when, status);
        exit(1);
    }
    for (i = 0; i < N; i++)
        for (j = 0; j < N; j++)
            if (strcmp(mine[i], theirs[j]) == 0) {
                fprintf(stderr, "%s: parent and child both drew %s\n", when, mine[i]);
                exit(1);
            }
}

/* A fork with the module unloaded: the child must come through it and exit cleanly. */
static void fork_unloaded(void)
{
    int status;
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0)
        _exit(0);
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "after unloading: the child failed (status %d)\n", status);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    char first[N][LEN + 1];
    lua_State *L;
    if (argc != 2) {
        fprintf(stderr, "usage: fork_host CPATH\n");
        return 2;
    }
    L = open_core(argv[1]);
    draw(L, first);                 /* a batch is drawn and partly handed out */
    fork_and_compare(L, "first fork");
    fork_and_compare(L, "second fork");
    lua_close(L);
    fork_unloaded();
    L = open_core(argv[1]);
    draw(L, first);
    fork_and_compare(L, "after loading again");
    lua_close(L);
    printf("ok %d tokens on each side of 3 forks\n", N);
    return 0;
}
