/* The scheduler's connections and the calls they carry, without blocking (see pool.h). */
#include "pool.h"
#include "curl_handle.h"
#include "protocol.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

/* libcurl's sockets for one connection being made (happy eyeballs tries two at once) */
#define POOL_SOCKS 4
/* reads of one answer in one pass: a server that sends without pause must not keep the
 * others waiting (its socket stays ready, so the next pass goes on with it) */
#define POOL_READS_PER_PASS 16
/* events taken from epoll in one wait: the rest stay ready for the next */
#define POOL_EVENTS 256
#define NO_CHECK ((long long)1 << 62)

enum { CONN_FREE = 0, CONN_CONNECTING, CONN_IDLE, CONN_BUSY };

struct pool_conn {
    int state;
    unsigned gen;                 /* bumped on every close: tells stale poll entries apart */
    int want;                     /* once connected: what the wait watches fd for */
    int plain;                    /* http: bytes by send/recv on fd (see conn_send) */
    CURLM *multi;                 /* this connection's own: its cache holds it alone */
    CURL *easy;                   /* CONNECT_ONLY */
    curl_socket_t fd;             /* once connected */
    curl_socket_t own;            /* fd once the pool has taken it from libcurl (detach) */
    char *url;
    pool_call *call;              /* CONNECTING or BUSY: the call it is for */
    pool *owner;
    curl_socket_t sock[POOL_SOCKS];   /* while connecting: what libcurl waits on */
    short events[POOL_SOCKS];
    long long timer_at;           /* while connecting: libcurl's next timeout, -1 none */
    char errbuf[CURL_ERROR_SIZE];
};

#ifdef DDB_POOL_EPOLL
/* One descriptor in the epoll set: its connection, and the serial its events carry (a
 * descriptor closed and made anew within one step gets another). */
struct pool_fd {
    pool_conn *conn;              /* NULL: not in the set */
    unsigned serial;
    unsigned events;
};
#endif

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Room for one more pointer in *list (of *n, capacity *cap): 0, or -1 on no memory. */
static int grow(void *list, size_t n, size_t *cap, size_t size)
{
    void **l = list;
    size_t c;
    void *p;
    if (n < *cap)
        return 0;
    c = *cap ? *cap * 2 : 16;
    p = realloc(*l, c * size);
    if (p == NULL)
        return -1;
    *l = p;
    *cap = c;
    return 0;
}

int ddb_pool_init(pool *p, const char *ca_bundle, long connect_timeout_ms, size_t max_answer,
                  size_t max_conns)
{
    memset(p, 0, sizeof *p);
    p->ca_bundle = ca_bundle;
    p->connect_timeout_ms = connect_timeout_ms;
    p->max_answer = max_answer;
    p->max_conns = max_conns;
    p->next_check = NO_CHECK;
#ifdef DDB_POOL_EPOLL
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p->epfd < 0)
        return -1;
    p->has_epfd = 1;
    p->ready = malloc(POOL_EVENTS * sizeof *p->ready);
    if (p->ready == NULL)
        return -1;
    p->capready = POOL_EVENTS;
#endif
    p->share = curl_share_init();
    if (p->share == NULL)
        return -1;
    /* one thread: no lock functions needed. Never the connections themselves: a shared
     * cache would let one handle close another's connection. */
    curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    return 0;
}

void ddb_pool_call_init(pool_call *c)
{
    memset(c, 0, sizeof *c);
    ddb_buf_init(&c->out);
    ddb_buf_init(&c->in);
    ddb_buf_init(&c->body);
}

void ddb_pool_call_free(pool_call *c)
{
    ddb_buf_free(&c->out);
    ddb_buf_free(&c->in);
    ddb_buf_free(&c->body);
    free(c->url);
    c->url = NULL;
    c->url_cap = 0;
}

/* ---- lists ---- */

static void calls_remove(pool *p, pool_call *c)
{
    pool_call *last = p->calls[--p->ncalls];
    last->slot = c->slot;
    p->calls[c->slot] = last;
}

static void idle_remove(pool *p, pool_conn *k)
{
    size_t i;
    for (i = p->nidle; i-- > 0;)
        if (p->idle[i] == k) {
            memmove(p->idle + i, p->idle + i + 1, (p->nidle - i - 1) * sizeof *p->idle);
            p->nidle--;
            return;
        }
}

static void queue_remove(pool *p, pool_call *c)
{
    size_t i;
    for (i = 0; i < p->nqueue; i++)
        if (p->queue[i] == c) {
            memmove(p->queue + i, p->queue + i + 1, (p->nqueue - i - 1) * sizeof *p->queue);
            p->nqueue--;
            return;
        }
}

/* ---- the wait set ---- */

static void lower_check(pool *p, long long at)
{
    if (at < p->next_check)
        p->next_check = at;
}

#ifdef DDB_POOL_EPOLL
/* fd in the epoll set for k, watched for events (EPOLLIN, EPOLLOUT): a system call only when
 * that changes. 0, or -1 (no memory, or epoll refused: the caller fails the connection). */
static int watch(pool *p, pool_conn *k, curl_socket_t fd, unsigned events)
{
    struct pool_fd *f;
    struct epoll_event ev;
    int op;
    if (fd < 0)
        return -1;
    if ((size_t)fd >= p->capbyfd) {
        size_t cap = p->capbyfd ? p->capbyfd : 64;
        struct pool_fd *t;
        while (cap <= (size_t)fd)
            cap *= 2;
        t = realloc(p->byfd, cap * sizeof *t);
        if (t == NULL)
            return -1;
        memset(t + p->capbyfd, 0, (cap - p->capbyfd) * sizeof *t);
        p->byfd = t;
        p->capbyfd = cap;
    }
    f = &p->byfd[fd];
    if (f->conn == k && f->events == events)
        return 0;
    if (f->conn == k) {
        op = EPOLL_CTL_MOD;
    } else {
        op = f->conn != NULL ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;   /* a closed one's number */
        f->serial = ++p->serial;
    }
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = ((uint64_t)f->serial << 32) | (uint32_t)fd;
    if (epoll_ctl(p->epfd, op, fd, &ev) != 0) {
        /* the set and the table disagree (a descriptor closed behind us): the other op */
        op = op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
        if ((errno != EEXIST && errno != ENOENT) || epoll_ctl(p->epfd, op, fd, &ev) != 0) {
            f->conn = NULL;
            return -1;
        }
    }
    f->conn = k;
    f->events = events;
    return 0;
}

/* k's fd out of the epoll set, before it is closed (another connection's, with the same
 * number after a close behind us, is left alone). */
static void unwatch(pool *p, pool_conn *k, curl_socket_t fd)
{
    struct epoll_event ev;
    if (fd < 0 || (size_t)fd >= p->capbyfd || p->byfd[fd].conn != k)
        return;
    memset(&ev, 0, sizeof ev);
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, &ev);
    p->byfd[fd].conn = NULL;
}
#endif

/* ---- connections ---- */

static void conn_close(pool *p, pool_conn *k)
{
    if (k->state == CONN_FREE)
        return;
    if (k->state == CONN_IDLE)
        idle_remove(p, k);
#ifdef DDB_POOL_EPOLL
    {
        int i;
        unwatch(p, k, k->fd);
        for (i = 0; i < POOL_SOCKS; i++)
            unwatch(p, k, k->sock[i]);
    }
#endif
    if (k->multi != NULL && k->easy != NULL)
        curl_multi_remove_handle(k->multi, k->easy);   /* closes a CONNECT_ONLY connection */
    if (k->easy != NULL)
        curl_easy_cleanup(k->easy);
    if (k->multi != NULL)
        curl_multi_cleanup(k->multi);
    if (k->own != CURL_SOCKET_BAD)
        close(k->own);
    k->easy = NULL;
    k->multi = NULL;
    k->fd = CURL_SOCKET_BAD;
    k->own = CURL_SOCKET_BAD;
    k->call = NULL;
    k->want = 0;
    k->state = CONN_FREE;
    k->gen++;
    p->open--;
}

void ddb_pool_close(pool *p)
{
    size_t i;
    for (i = 0; i < p->nconns; i++) {
        conn_close(p, p->conns[i]);
        free(p->conns[i]->url);
        free(p->conns[i]);
    }
    free(p->conns);
    free(p->idle);
    free(p->calls);
    free(p->queue);
    free(p->finished);
    free(p->fds);
#ifdef DDB_POOL_EPOLL
    free(p->byfd);
    free(p->ready);
    if (p->has_epfd)
        close(p->epfd);
#else
    free(p->polled);
    free(p->polled_gen);
#endif
    free(p->scratch);
    if (p->share != NULL)
        curl_share_cleanup(p->share);
    memset(p, 0, sizeof *p);
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    pool_conn *k = userp;
    int i, free_at = -1;
    (void)easy;
    (void)socketp;
    if (what == CURL_POLL_REMOVE) {
        for (i = 0; i < POOL_SOCKS; i++)
            if (k->sock[i] == s)
                k->sock[i] = CURL_SOCKET_BAD;
#ifdef DDB_POOL_EPOLL
        /* once connected, fd is the pool's to watch, whatever libcurl says of it */
        if (k->state == CONN_CONNECTING)
            unwatch(k->owner, k, s);
#endif
        return 0;
    }
    for (i = 0; i < POOL_SOCKS; i++) {
        if (k->sock[i] == s) {
            free_at = i;
            break;
        }
        if (free_at < 0 && k->sock[i] == CURL_SOCKET_BAD)
            free_at = i;
    }
    if (free_at < 0)
        return -1;   /* more sockets than any connect uses: libcurl fails the transfer */
    k->sock[free_at] = s;
    k->events[free_at] = (short)(((what & CURL_POLL_IN) ? POLLIN : 0) |
                                 ((what & CURL_POLL_OUT) ? POLLOUT : 0));
#ifdef DDB_POOL_EPOLL
    if (watch(k->owner, k, s, ((what & CURL_POLL_IN) ? EPOLLIN : 0) |
                              ((what & CURL_POLL_OUT) ? EPOLLOUT : 0)) != 0)
        return -1;   /* libcurl fails the transfer */
#endif
    return 0;
}

static int on_timer(CURLM *m, long timeout_ms, void *userp)
{
    pool_conn *k = userp;
    (void)m;
    k->timer_at = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    if (k->timer_at >= 0)
        lower_check(k->owner, k->timer_at);
    return 0;
}

/* A connection struct not in use (a new one when none is): NULL on no memory. */
static pool_conn *conn_take(pool *p)
{
    size_t i;
    pool_conn *k;
    for (i = 0; i < p->nconns; i++)
        if (p->conns[i]->state == CONN_FREE)
            return p->conns[i];
    if (grow(&p->conns, p->nconns, &p->capconns, sizeof *p->conns) != 0)
        return NULL;
    k = calloc(1, sizeof *k);
    if (k == NULL)
        return NULL;
    k->owner = p;
    k->fd = CURL_SOCKET_BAD;
    k->own = CURL_SOCKET_BAD;
    p->conns[p->nconns++] = k;
    return k;
}

static void finish(pool *p, pool_call *c);
static void drive(pool *p, pool_call *c);

/* What the wait watches k's connected socket for: POLLIN or POLLOUT. Under epoll a system
 * call only when that changes (idle and reading both watch for input). 0, or -1. */
static int want(pool *p, pool_conn *k, int events)
{
    if (k->want == events)
        return 0;
#ifdef DDB_POOL_EPOLL
    if (watch(p, k, k->fd, (events & POLLIN ? EPOLLIN : 0) | (events & POLLOUT ? EPOLLOUT : 0))
        != 0)
        return -1;
#else
    (void)p;
#endif
    k->want = events;
    return 0;
}

static void fail(pool *p, pool_call *c, const char *code, const char *applied,
                 const char *retry_class, const char *message)
{
    c->failed = PCALL_FAILED;
    c->code = code;
    c->applied = applied;
    c->retry_class = retry_class;
    snprintf(c->message, sizeof c->message, "%s", message);
    if (c->conn != NULL)
        conn_close(p, c->conn);
    c->conn = NULL;
    finish(p, c);
}

static void connect_failed(pool *p, pool_call *c, CURLcode rc)
{
    c->failed = PCALL_CONNECT_FAILED;
    c->rc = rc;
    snprintf(c->message, sizeof c->message, "%s",
             c->conn != NULL ? c->conn->errbuf : "");
    if (c->conn != NULL)
        conn_close(p, c->conn);
    c->conn = NULL;
    finish(p, c);
}

/* libcurl closing a socket of k's: every one but the socket the pool has taken (k->own). */
static int on_close(void *clientp, curl_socket_t s)
{
    pool_conn *k = clientp;
    return s == k->own ? 0 : close(s);
}

#ifdef MSG_NOSIGNAL
/* A plain connection made: the pool takes its socket and libcurl's two handles let go of
 * it, freeing the ~45 KB they hold per connection (its download buffer, the multi's socket
 * hash) that a plain connection never uses again (conn_send, conn_recv); conn_close closes
 * the socket itself. */
static void detach(pool_conn *k)
{
    k->own = k->fd;
    curl_multi_remove_handle(k->multi, k->easy);
    curl_easy_cleanup(k->easy);
    curl_multi_cleanup(k->multi);
    k->easy = NULL;
    k->multi = NULL;
    k->timer_at = -1;
}
#endif

/* Whether libcurl has finished making k's connection; then the call goes on (or fails). */
static void check_connected(pool *p, pool_conn *k)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(k->multi, &left)) != NULL) {
        pool_call *c = k->call;
        curl_socket_t fd = CURL_SOCKET_BAD;
        CURLcode rc;
        if (msg->msg != CURLMSG_DONE || c == NULL)
            continue;
        rc = msg->data.result;
        if (rc == CURLE_OK && (curl_easy_getinfo(k->easy, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK
                               || fd == CURL_SOCKET_BAD))
            rc = CURLE_COULDNT_CONNECT;
        if (rc != CURLE_OK) {
            connect_failed(p, c, rc);
            return;
        }
        k->fd = fd;
        k->state = CONN_BUSY;
        k->timer_at = -1;
        k->want = 0;
        k->plain = strncmp(k->url, "http://", 7) == 0;
        p->connects++;
#ifdef DDB_POOL_EPOLL
        {
            int i;
            /* fd stays in the set (want below changes what for); the others are done */
            for (i = 0; i < POOL_SOCKS; i++)
                if (k->sock[i] != fd)
                    unwatch(p, k, k->sock[i]);
        }
#endif
#ifdef MSG_NOSIGNAL
        if (k->plain)
            detach(k);   /* msg goes with the multi: nothing reads it below */
#endif
        if (want(p, k, POLLIN) != 0) {
            fail(p, c, "NetworkError", PROTO_APPLIED_NO, "transient",
                 "could not watch the new connection (nothing was sent)");
            return;
        }
        c->state = PCALL_SENDING;
        drive(p, c);
        return;
    }
}

/* Makes a new connection for c (its url; p->open is below the cap). */
static void conn_open(pool *p, pool_call *c)
{
    pool_conn *k = conn_take(p);
    size_t len = strlen(c->url);
    long left = (long)(c->deadline - now_ms());
    char *url = k != NULL ? realloc(k->url, len + 1) : NULL;
    int i, running = 0;

    if (left < 1)
        left = 1;
    if (url == NULL) {
        fail(p, c, "NetworkError", PROTO_APPLIED_NO, "transient",
             "out of memory making a connection (nothing was sent)");
        return;
    }
    memcpy(url, c->url, len + 1);
    k->url = url;
    k->multi = curl_multi_init();
    k->easy = curl_easy_init();
    k->state = CONN_CONNECTING;
    k->call = c;
    k->timer_at = -1;
    for (i = 0; i < POOL_SOCKS; i++)
        k->sock[i] = CURL_SOCKET_BAD;
    k->errbuf[0] = '\0';
    p->open++;
    c->conn = k;
    c->state = PCALL_CONNECTING;
    c->reused = 0;
    if (k->multi == NULL || k->easy == NULL) {
        connect_failed(p, c, CURLE_OUT_OF_MEMORY);
        return;
    }
    curl_multi_setopt(k->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(k->multi, CURLMOPT_SOCKETDATA, k);
    curl_multi_setopt(k->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(k->multi, CURLMOPT_TIMERDATA, k);
    ddb_curl_handle_connect_only(k->easy, k->url, k->errbuf, p->ca_bundle, p->connect_timeout_ms,
                                 left);
    curl_easy_setopt(k->easy, CURLOPT_SHARE, p->share);
    curl_easy_setopt(k->easy, CURLOPT_CLOSESOCKETFUNCTION, on_close);
    curl_easy_setopt(k->easy, CURLOPT_CLOSESOCKETDATA, k);
    if (curl_multi_add_handle(k->multi, k->easy) != CURLM_OK) {
        connect_failed(p, c, CURLE_OUT_OF_MEMORY);
        return;
    }
    /* start at once: for a numeric address the TCP connect begins now */
    curl_multi_socket_action(k->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_connected(p, k);
}


/* c on a kept connection for its URL, or on a new one, or queued. */
static void assign(pool *p, pool_call *c)
{
    size_t i;
    for (i = p->nidle; i-- > 0;) {
        pool_conn *k = p->idle[i];
        if (strcmp(k->url, c->url) != 0)
            continue;
        idle_remove(p, k);   /* only the entries above i move */
        k->state = CONN_BUSY;
        if (!ddb_curl_still_open(k->easy, k->fd)) {
            conn_close(p, k);
            continue;
        }
        k->call = c;
        c->conn = k;
        c->reused = 1;
        c->state = PCALL_SENDING;
        drive(p, c);
        return;
    }
    if (p->max_conns > 0 && p->open >= p->max_conns && p->nidle > 0)
        conn_close(p, p->idle[0]);   /* the one idle longest, kept for another URL */
    if (p->max_conns == 0 || p->open < p->max_conns) {
        conn_open(p, c);
        return;
    }
    if (grow(&p->queue, p->nqueue, &p->capqueue, sizeof *p->queue) != 0) {
        fail(p, c, "NetworkError", PROTO_APPLIED_NO, "transient",
             "out of memory queueing the request (nothing was sent)");
        return;
    }
    c->state = PCALL_QUEUED;
    p->queue[p->nqueue++] = c;
}

/* Queued calls take the room a connection left. */
static void dispatch(pool *p)
{
    while (p->nqueue > 0 && (p->max_conns == 0 || p->open < p->max_conns || p->nidle > 0)) {
        pool_call *c = p->queue[0];
        memmove(p->queue, p->queue + 1, (p->nqueue - 1) * sizeof *p->queue);
        p->nqueue--;
        c->state = PCALL_IDLE;
        assign(p, c);
    }
}

static void finish(pool *p, pool_call *c)
{
    if (c->state == PCALL_QUEUED)
        queue_remove(p, c);
    c->state = PCALL_DONE;
    calls_remove(p, c);
    /* room was made for it in ddb_pool_start */
    p->finished[p->nfinished++] = c;
}

int ddb_pool_start(pool *p, pool_call *c, const char *url, long timeout_ms)
{
    size_t len = strlen(url);
    /* the finished list has room for every call in flight, so that ending one never fails */
    if (grow(&p->calls, p->ncalls, &p->capcalls, sizeof *p->calls) != 0 ||
        grow(&p->finished, p->nfinished + p->ncalls, &p->capfinished, sizeof *p->finished) != 0)
        return -1;
    if (len >= c->url_cap) {
        char *u = realloc(c->url, len + 1);
        if (u == NULL)
            return -1;
        c->url = u;
        c->url_cap = len + 1;
    }
    memcpy(c->url, url, len + 1);
    c->failed = PCALL_ANSWERED;
    c->conn = NULL;
    c->sent = 0;
    c->reused = 0;
    c->deadline = now_ms() + timeout_ms;
    lower_check(p, c->deadline);
    c->slot = p->ncalls;
    p->calls[p->ncalls++] = c;
    ddb_answer_start(&c->ans, &c->in, &c->body, p->max_answer);
    assign(p, c);
    return 0;
}

/* ---- moving bytes ---- */

/* On a plain (http) connection the bytes go by send/recv on the socket itself, as libcurl's
 * own plain path does (MSG_NOSIGNAL; EAGAIN and EINTR are CURLE_AGAIN), without its lookups
 * of the connection behind the handle, which at hundreds of connections are cache misses
 * on every call. TLS stays with libcurl. */
#ifdef MSG_NOSIGNAL
/* What send or recv returned (r) as curl_easy_send/recv would say it: *n bytes moved. */
static CURLcode plain_result(ssize_t r, size_t *n, CURLcode failed)
{
    *n = r > 0 ? (size_t)r : 0;
    if (r >= 0)
        return CURLE_OK;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? CURLE_AGAIN : failed;
}
#endif

static CURLcode conn_send(pool_conn *k, const char *data, size_t len, size_t *n)
{
#ifdef MSG_NOSIGNAL
    if (k->plain)
        return plain_result(send(k->fd, data, len, MSG_NOSIGNAL), n, CURLE_SEND_ERROR);
#endif
    return curl_easy_send(k->easy, data, len, n);
}

static CURLcode conn_recv(pool_conn *k, char *at, size_t room, size_t *n)
{
#ifdef MSG_NOSIGNAL
    if (k->plain)
        return plain_result(recv(k->fd, at, room, 0), n, CURLE_RECV_ERROR);
#endif
    return curl_easy_recv(k->easy, at, room, n);
}

static void answered(pool *p, pool_call *c)
{
    pool_conn *k = c->conn;
    c->conn = NULL;
    if (!ddb_answer_keep(&c->ans)) {
        conn_close(p, k);
    } else if (grow(&p->idle, p->nidle, &p->capidle, sizeof *p->idle) != 0) {
        conn_close(p, k);
    } else if (want(p, k, POLLIN) != 0) {   /* input on an idle one: it closed */
        conn_close(p, k);
    } else {
        k->state = CONN_IDLE;
        k->call = NULL;
        p->idle[p->nidle++] = k;
    }
    c->failed = PCALL_ANSWERED;
    finish(p, c);
}

/* c's kept connection had closed before a byte of its request left: once more on a new one,
 * as wire.c does (that one gets no second chance). */
static void reconnect(pool *p, pool_call *c)
{
    conn_close(p, c->conn);
    c->conn = NULL;
    conn_open(p, c);   /* the closed connection made room under the cap */
}

static void send_some(pool *p, pool_call *c)
{
    while (c->sent < c->out.len) {
        size_t n = 0;
        CURLcode rc;
        /* before every write, as wire.c: a server that reads slowly but steadily must not
         * hold the call past its deadline */
        if (now_ms() >= c->deadline) {
            fail(p, c, "Timeout", PROTO_APPLIED_NO, "timeout",
                 "timed out sending the request (not all of it left: not applied)");
            return;
        }
        rc = conn_send(c->conn, c->out.data + c->sent, c->out.len - c->sent, &n);
        if (rc == CURLE_AGAIN) {
            if (want(p, c->conn, POLLOUT) != 0)
                fail(p, c, "NetworkError", PROTO_APPLIED_NO, "transient",
                     "could not wait to send the request (not all of it left: not applied)");
            return;
        }
        if (rc != CURLE_OK) {
            if (c->reused && c->sent == 0) {
                reconnect(p, c);
                return;
            }
            fail(p, c, "NetworkError", PROTO_APPLIED_NO, "transient",
                 "the connection failed while the request was being sent (not all of it "
                 "left: not applied)");
            return;
        }
        c->sent += n;
    }
    c->state = PCALL_READING;
    if (want(p, c->conn, POLLIN) != 0)
        fail(p, c, "NetworkError", PROTO_APPLIED_MAYBE, "transient",
             "could not wait for the answer (the request was sent)");
}

static void receive_some(pool *p, pool_call *c)
{
    static const char *const MAYBE = PROTO_APPLIED_MAYBE;
    int reads;
    for (reads = 0; reads < POOL_READS_PER_PASS; reads++) {
        size_t n = 0, room;
        char *at;
        CURLcode rc;
        int r;
        if (now_ms() >= c->deadline) {
            fail(p, c, "Timeout", MAYBE, "timeout",
                 "timed out reading the answer (the request was sent)");
            return;
        }
        if ((at = ddb_answer_space(&c->ans, &room)) == NULL) {
            fail(p, c, "NetworkError", MAYBE, "transient", "out of memory reading the answer");
            return;
        }
        rc = conn_recv(c->conn, at, room, &n);
        if (rc == CURLE_AGAIN)
            return;
        if (rc != CURLE_OK) {
            fail(p, c, "NetworkError", MAYBE, "transient", curl_easy_strerror(rc));
            return;
        }
        r = n == 0 ? ddb_answer_closed(&c->ans) : ddb_answer_received(&c->ans, n);
        if (r == ANSWER_DONE) {
            answered(p, c);
            return;
        }
        if (r != ANSWER_MORE) {
            const char *code, *cls;
            char message[160];
            ddb_answer_failure(&c->ans, r, &code, &cls, message, sizeof message);
            fail(p, c, code, MAYBE, cls, message);
            return;
        }
    }
}

static void drive(pool *p, pool_call *c)
{
    if (c->state == PCALL_SENDING)
        send_some(p, c);
    else if (c->state == PCALL_READING)
        receive_some(p, c);
}

/* ---- waiting ---- */

static int fds_room(pool *p)
{
    size_t cap;
    struct pollfd *f;
    if (p->nfds < p->capfds)
        return 0;
    cap = p->capfds ? p->capfds * 2 : 16;
    f = realloc(p->fds, cap * sizeof *f);
    if (f == NULL)
        return -1;
    p->fds = f;
#ifndef DDB_POOL_EPOLL
    {
        pool_conn **c;
        unsigned *g;
        c = realloc(p->polled, cap * sizeof *c);
        if (c == NULL)
            return -1;
        p->polled = c;
        g = realloc(p->polled_gen, cap * sizeof *g);
        if (g == NULL)
            return -1;
        p->polled_gen = g;
    }
#endif
    p->capfds = cap;
    return 0;
}

static void lower(int *timeout_ms, long long at, long long now)
{
    long long left = at - now;
    if (left < 0)
        left = 0;
    if (*timeout_ms < 0 || left < *timeout_ms)
        *timeout_ms = left > 0x7fffffff ? 0x7fffffff : (int)left;
}

/* A ready socket of k's (fd, poll's revents): its connect goes on, or its call, or an idle
 * connection that the server closed (or wrote to unasked) is closed. */
static void moved(pool *p, pool_call *c, pool_conn *k, curl_socket_t fd, int revents)
{
    if (k->state == CONN_CONNECTING) {
        int running = 0, ev = 0;
        if (revents & POLLIN)
            ev |= CURL_CSELECT_IN;
        if (revents & POLLOUT)
            ev |= CURL_CSELECT_OUT;
        if (revents & (POLLERR | POLLHUP | POLLNVAL))
            ev |= CURL_CSELECT_ERR;
        curl_multi_socket_action(k->multi, fd, ev, &running);
        check_connected(p, k);
    } else if (k->state == CONN_BUSY && c != NULL && k->fd == fd) {
        drive(p, c);
    } else if (k->state == CONN_IDLE && k->fd == fd) {
        conn_close(p, k);   /* input, or a hang-up, with no request out: it is closed */
    }
}

#ifdef DDB_POOL_EPOLL

int ddb_pool_wait_set(pool *p, int *timeout_ms)
{
    if (p->next_check < NO_CHECK)
        lower(timeout_ms, p->next_check, now_ms());
    p->nfds = 0;
    p->waited = 0;
    if (fds_room(p) != 0)
        return -1;
    p->fds[0].fd = p->epfd;
    p->fds[0].events = POLLIN;
    p->fds[0].revents = 0;
    p->nfds = 1;
    return 0;
}

void ddb_pool_wait(pool *p, int timeout_ms)
{
    int n = epoll_wait(p->epfd, p->ready, p->capready, timeout_ms);
    p->nready = n > 0 ? n : 0;
    p->waited = 1;
}

/* The events of the last wait: what each is for, unless its socket was closed since. */
static void progress_ready(pool *p)
{
    int i;
    if (!p->waited && p->nfds == 1 && p->fds[0].revents != 0)
        ddb_pool_wait(p, 0);   /* the caller's poll saw the epoll set ready */
    for (i = 0; i < p->nready; i++) {
        struct epoll_event *e = &p->ready[i];
        curl_socket_t fd = (curl_socket_t)(uint32_t)e->data.u64;
        unsigned serial = (unsigned)(e->data.u64 >> 32);
        struct pool_fd *f;
        int rev = 0;
        if ((size_t)fd >= p->capbyfd)
            continue;
        f = &p->byfd[fd];
        if (f->conn == NULL || f->serial != serial)
            continue;   /* closed (perhaps made anew) since the wait began */
        if (e->events & EPOLLIN)
            rev |= POLLIN;
        if (e->events & EPOLLOUT)
            rev |= POLLOUT;
        if (e->events & EPOLLERR)
            rev |= POLLERR;
        if (e->events & EPOLLHUP)
            rev |= POLLHUP;
        moved(p, f->conn->call, f->conn, fd, rev);
    }
    p->nready = 0;
    p->waited = 0;
}

#else

static int add_fd(pool *p, pool_conn *k, curl_socket_t fd, short events)
{
    if (fds_room(p) != 0)
        return -1;
    p->fds[p->nfds].fd = fd;
    p->fds[p->nfds].events = events;
    p->fds[p->nfds].revents = 0;
    p->polled[p->nfds] = k;
    p->polled_gen[p->nfds] = k->gen;
    p->nfds++;
    return 0;
}

int ddb_pool_wait_set(pool *p, int *timeout_ms)
{
    size_t i;
    int j;
    if (p->next_check < NO_CHECK)
        lower(timeout_ms, p->next_check, now_ms());
    p->nfds = 0;
    for (i = 0; i < p->ncalls; i++) {
        pool_call *c = p->calls[i];
        pool_conn *k = c->conn;
        if (c->state == PCALL_CONNECTING && k != NULL) {
            for (j = 0; j < POOL_SOCKS; j++)
                if (k->sock[j] != CURL_SOCKET_BAD && add_fd(p, k, k->sock[j], k->events[j]) != 0)
                    return -1;
        } else if ((c->state == PCALL_SENDING || c->state == PCALL_READING) && k != NULL) {
            if (add_fd(p, k, k->fd, c->state == PCALL_SENDING ? POLLOUT : POLLIN) != 0)
                return -1;
        }
    }
    return 0;
}

void ddb_pool_wait(pool *p, int timeout_ms)
{
    size_t i;
    if (p->nfds == 0 && timeout_ms <= 0)
        return;
    if (poll(p->fds, (nfds_t)p->nfds, timeout_ms) <= 0)
        for (i = 0; i < p->nfds; i++)
            p->fds[i].revents = 0;
}

static void progress_ready(pool *p)
{
    size_t i;
    for (i = 0; i < p->nfds; i++) {
        struct pollfd *f = &p->fds[i];
        pool_conn *k = p->polled[i];
        if (f->revents == 0 || k->gen != p->polled_gen[i])
            continue;   /* not ready, or closed (perhaps made anew) since the wait began */
        moved(p, k->call, k, f->fd, f->revents);
    }
}

#endif

/* libcurl's timers and the deadlines, when one may be due: a scan of the calls in flight,
 * over a copy of the list (ending a call changes it; the calls themselves are the caller's,
 * valid throughout), which also finds the next time to look. */
static void progress_timers(pool *p)
{
    size_t i, n;
    long long now = now_ms();
    if (now < p->next_check)
        return;
    if (p->ncalls > p->capscratch) {
        pool_call **q = realloc(p->scratch, p->ncalls * sizeof *q);
        if (q == NULL)
            return;   /* the next pass tries again */
        p->scratch = q;
        p->capscratch = p->ncalls;
    }
    n = p->ncalls;
    if (n > 0)
        memcpy(p->scratch, p->calls, n * sizeof *p->scratch);
    p->next_check = NO_CHECK;   /* lowered again below, and by on_timer and new calls */
    for (i = 0; i < n; i++) {
        pool_call *c = p->scratch[i];
        pool_conn *k = c->conn;
        if (c->state == PCALL_CONNECTING && k != NULL && k->timer_at >= 0 && k->timer_at <= now) {
            int running = 0;
            k->timer_at = -1;
            curl_multi_socket_action(k->multi, CURL_SOCKET_TIMEOUT, 0, &running);
            check_connected(p, k);
        }
        if (c->state == PCALL_DONE)
            continue;
        if (now < c->deadline) {
            lower_check(p, c->deadline);
            k = c->conn;
            if (c->state == PCALL_CONNECTING && k != NULL && k->timer_at >= 0)
                lower_check(p, k->timer_at);
            continue;
        }
        switch (c->state) {
        case PCALL_QUEUED:
            fail(p, c, "Timeout", PROTO_APPLIED_NO, "timeout",
                 "timed out waiting for a connection (nothing was sent)");
            break;
        case PCALL_CONNECTING:
            fail(p, c, "Timeout", PROTO_APPLIED_NO, "timeout",
                 "timed out connecting (nothing was sent)");
            break;
        case PCALL_SENDING:
            fail(p, c, "Timeout", PROTO_APPLIED_NO, "timeout",
                 "timed out sending the request (not all of it left: not applied)");
            break;
        default:
            fail(p, c, "Timeout", PROTO_APPLIED_MAYBE, "timeout",
                 "timed out waiting for the answer (the request was sent)");
            break;
        }
    }
}

void ddb_pool_progress(pool *p)
{
    progress_ready(p);
    p->nfds = 0;
    progress_timers(p);
    /* queued calls take the room that answers and failures left */
    dispatch(p);
}

pool_call **ddb_pool_take_finished(pool *p, size_t *n)
{
    *n = p->nfinished;
    p->nfinished = 0;
    return p->finished;
}

size_t ddb_pool_busy(const pool *p)
{
    return p->ncalls;
}
