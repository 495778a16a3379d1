/* The scheduler's own HTTP/1.1, the non-blocking sibling of wire.h: a pool of kept-alive
 * connections that libcurl makes without blocking (DNS, TCP, TLS and its checks), each
 * CONNECT_ONLY handle in a multi handle of its own so that no connection cache but its own
 * can close it, and calls that write their request to one and read its answer themselves
 * (curl_easy_send/recv over TLS, send/recv on a plain socket; answer.c: the one-call path's
 * framing, limits and failure classes).
 * The caller waits: ddb_pool_wait_set says until when (and which descriptors to wait on beside
 * others'), ddb_pool_wait waits on the pool's alone, ddb_pool_progress moves what is ready and
 * ends what is past its deadline. On Linux the sockets stay in one epoll set, each step costing
 * what is ready, not what is in flight; elsewhere poll() over all of them. Nothing here blocks
 * but ddb_pool_wait, and no Lua. */
#ifndef DDB_POOL_H
#define DDB_POOL_H

#include <poll.h>
#include <stddef.h>
#if defined(__linux__) && !defined(DDB_POOL_POLL)
#define DDB_POOL_EPOLL 1
#endif
#include <curl/curl.h>
#include "answer.h"
#include "buf.h"
#include "visibility.h"
#ifdef DDB_POOL_EPOLL
#include <sys/epoll.h>
#endif

DDB_HIDDEN_BEGIN

struct pool_fd;

typedef struct pool_conn pool_conn;

/* Where a call stands. */
enum {
    PCALL_IDLE = 0,     /* not started, or taken after it ended */
    PCALL_QUEUED,       /* waiting for a connection (the pool is at max_conns) */
    PCALL_CONNECTING,   /* its connection is being made */
    PCALL_SENDING,
    PCALL_READING,
    PCALL_DONE          /* ended: the answer is in, or failed says why not */
};

/* How a call ended. */
enum {
    PCALL_ANSWERED = 0,      /* ans holds a complete answer */
    PCALL_CONNECT_FAILED,    /* libcurl could not connect: rc and message (nothing was sent) */
    PCALL_FAILED             /* code, applied, retry_class and message */
};

typedef struct pool_call {
    int state;
    buf out;                 /* the request, written by the caller before ddb_pool_start */
    buf in;                  /* the answer as received */
    buf body;                /* a chunked answer's body, decoded */
    answer ans;
    /* once DONE */
    int failed;
    CURLcode rc;
    const char *code, *applied, *retry_class;
    char message[CURL_ERROR_SIZE];
    /* the pool's */
    char *url;
    size_t url_cap;
    size_t sent;
    long long deadline;
    int reused;              /* on a kept connection: a send that fails at once may go anew */
    pool_conn *conn;
    size_t slot;             /* in the pool's calls in flight */
} pool_call;

typedef struct pool {
    pool_conn **conns;       /* every connection struct made, reused once closed */
    size_t nconns, capconns;
    pool_conn **idle;        /* kept connections, the most recently used last */
    size_t nidle, capidle;
    pool_call **calls;       /* in flight (not DONE) */
    size_t ncalls, capcalls;
    pool_call **queue;       /* QUEUED calls, oldest first */
    size_t nqueue, capqueue;
    pool_call **finished;    /* DONE since the caller last took them */
    size_t nfinished, capfinished;
    struct pollfd *fds;      /* what ddb_pool_wait_set built (epoll: the epoll descriptor) */
    size_t nfds, capfds;
#ifdef DDB_POOL_EPOLL
    int epfd, has_epfd;
    struct pool_fd *byfd;    /* indexed by descriptor: what is in the epoll set */
    size_t capbyfd;
    unsigned serial;         /* of the last registration: tells stale events apart */
    struct epoll_event *ready;   /* what the last wait returned */
    int nready, capready;
    int waited;              /* ready holds this step's events */
#else
    pool_conn **polled;      /* the connection of each fds entry */
    unsigned *polled_gen;
#endif
    long long next_check;    /* no deadline or libcurl timer falls before this: no scan */
    pool_call **scratch;     /* ddb_pool_progress's copy of calls */
    size_t capscratch;
    CURLSH *share;           /* DNS and TLS sessions, shared by the connections */
    const char *ca_bundle;   /* borrowed: outlives the pool */
    long connect_timeout_ms;
    size_t max_answer;
    size_t max_conns;        /* 0: no cap */
    size_t open;             /* connections open or being made */
    long connects;           /* connections made, for stats() */
} pool;

/* 0, or -1 when memory runs out. */
int ddb_pool_init(pool *p, const char *ca_bundle, long connect_timeout_ms, size_t max_answer,
                  size_t max_conns);
/* Closes every connection; calls in flight are left as they are (the caller frees them). */
void ddb_pool_close(pool *p);
void ddb_pool_call_init(pool_call *c);
void ddb_pool_call_free(pool_call *c);
/* Starts c (IDLE, c->out holding the whole request) for url within timeout_ms: on a kept
 * connection for url when one is alive, else on a new one, else queued. What can be sent at
 * once is. 0: c is in flight and will be on the finished list (even when it ends here);
 * -1: no memory, c was not started (nothing was sent). */
int ddb_pool_start(pool *p, pool_call *c, const char *url, long timeout_ms);
/* What to wait on beside other descriptors (p->fds, p->nfds entries: under epoll its one
 * descriptor) and *timeout_ms lowered to the nearest deadline or libcurl timer (never below 0).
 * 0, or -1 when memory runs out. */
int ddb_pool_wait_set(pool *p, int *timeout_ms);
/* After ddb_pool_wait_set: waits up to timeout_ms on the pool's sockets alone (instead of a
 * poll of p->fds by the caller). */
void ddb_pool_wait(pool *p, int timeout_ms);
/* After the wait (ddb_pool_wait, or the caller's on p->fds with their revents): moves every
 * call whose socket is ready, runs libcurl's connects, and ends calls past their deadline. */
void ddb_pool_progress(pool *p);
/* The calls that ended since the last ddb_pool_take_finished: they are DONE, and the pool
 * holds no pointer to them any more. */
pool_call **ddb_pool_take_finished(pool *p, size_t *n);
/* Calls in flight. */
size_t ddb_pool_busy(const pool *p);

DDB_HIDDEN_END

#endif
