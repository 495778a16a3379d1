/* The scheduler's connections and the calls they carry, without blocking (see pool.h). */
#include "pool.h"
#include "curl_handle.h"
#include "protocol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* libcurl's sockets for one connection being made (happy eyeballs tries two at once) */
#define POOL_SOCKS 4
/* reads of one answer in one pass: a server that sends without pause must not keep the
 * others waiting (its socket stays ready, so the next pass goes on with it) */
#define POOL_READS_PER_PASS 16

enum { CONN_FREE = 0, CONN_CONNECTING, CONN_IDLE, CONN_BUSY };

struct pool_conn {
    int state;
    unsigned gen;                 /* bumped on every close: tells stale poll entries apart */
    CURLM *multi;                 /* this connection's own: its cache holds it alone */
    CURL *easy;                   /* CONNECT_ONLY */
    curl_socket_t fd;             /* once connected */
    char *url;
    pool_call *call;              /* CONNECTING or BUSY: the call it is for */
    pool *owner;
    curl_socket_t sock[POOL_SOCKS];   /* while connecting: what libcurl waits on */
    short events[POOL_SOCKS];
    long long timer_at;           /* while connecting: libcurl's next timeout, -1 none */
    char errbuf[CURL_ERROR_SIZE];
};

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

/* ---- connections ---- */

static void conn_close(pool *p, pool_conn *k)
{
    if (k->state == CONN_FREE)
        return;
    if (k->state == CONN_IDLE)
        idle_remove(p, k);
    if (k->multi != NULL && k->easy != NULL)
        curl_multi_remove_handle(k->multi, k->easy);   /* closes a CONNECT_ONLY connection */
    if (k->easy != NULL)
        curl_easy_cleanup(k->easy);
    if (k->multi != NULL)
        curl_multi_cleanup(k->multi);
    k->easy = NULL;
    k->multi = NULL;
    k->fd = CURL_SOCKET_BAD;
    k->call = NULL;
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
    free(p->polled);
    free(p->polled_gen);
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
    return 0;
}

static int on_timer(CURLM *m, long timeout_ms, void *userp)
{
    pool_conn *k = userp;
    (void)m;
    k->timer_at = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
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
    p->conns[p->nconns++] = k;
    return k;
}

static void finish(pool *p, pool_call *c);
static void drive(pool *p, pool_call *c);

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
        p->connects++;
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
    c->slot = p->ncalls;
    p->calls[p->ncalls++] = c;
    ddb_answer_start(&c->ans, &c->in, &c->body, p->max_answer);
    assign(p, c);
    return 0;
}

/* ---- moving bytes ---- */

static void answered(pool *p, pool_call *c)
{
    pool_conn *k = c->conn;
    c->conn = NULL;
    if (!ddb_answer_keep(&c->ans)) {
        conn_close(p, k);
    } else if (grow(&p->idle, p->nidle, &p->capidle, sizeof *p->idle) != 0) {
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
        rc = curl_easy_send(c->conn->easy, c->out.data + c->sent, c->out.len - c->sent, &n);
        if (rc == CURLE_AGAIN)
            return;
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
        rc = curl_easy_recv(c->conn->easy, at, room, &n);
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

static int add_fd(pool *p, pool_conn *k, curl_socket_t fd, short events)
{
    if (p->nfds == p->capfds) {
        size_t cap = p->capfds ? p->capfds * 2 : 16;
        struct pollfd *f = realloc(p->fds, cap * sizeof *f);
        pool_conn **c;
        unsigned *g;
        if (f == NULL)
            return -1;
        p->fds = f;
        c = realloc(p->polled, cap * sizeof *c);
        if (c == NULL)
            return -1;
        p->polled = c;
        g = realloc(p->polled_gen, cap * sizeof *g);
        if (g == NULL)
            return -1;
        p->polled_gen = g;
        p->capfds = cap;
    }
    p->fds[p->nfds].fd = fd;
    p->fds[p->nfds].events = events;
    p->fds[p->nfds].revents = 0;
    p->polled[p->nfds] = k;
    p->polled_gen[p->nfds] = k->gen;
    p->nfds++;
    return 0;
}

static void lower(int *timeout_ms, long long at, long long now)
{
    long long left = at - now;
    if (left < 0)
        left = 0;
    if (*timeout_ms < 0 || left < *timeout_ms)
        *timeout_ms = (int)left;
}

int ddb_pool_wait_set(pool *p, int *timeout_ms)
{
    long long now = now_ms();
    size_t i;
    int j;
    p->nfds = 0;
    for (i = 0; i < p->ncalls; i++) {
        pool_call *c = p->calls[i];
        pool_conn *k = c->conn;
        lower(timeout_ms, c->deadline, now);
        if (c->state == PCALL_CONNECTING && k != NULL) {
            if (k->timer_at >= 0)
                lower(timeout_ms, k->timer_at, now);
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

void ddb_pool_progress(pool *p)
{
    size_t i, n;
    long long now;
    for (i = 0; i < p->nfds; i++) {
        struct pollfd *f = &p->fds[i];
        pool_conn *k = p->polled[i];
        if (f->revents == 0 || k->gen != p->polled_gen[i])
            continue;   /* not ready, or closed (perhaps made anew) since the wait began */
        if (k->state == CONN_CONNECTING) {
            int running = 0, ev = 0;
            if (f->revents & POLLIN)
                ev |= CURL_CSELECT_IN;
            if (f->revents & POLLOUT)
                ev |= CURL_CSELECT_OUT;
            if (f->revents & (POLLERR | POLLHUP | POLLNVAL))
                ev |= CURL_CSELECT_ERR;
            curl_multi_socket_action(k->multi, f->fd, ev, &running);
            check_connected(p, k);
        } else if (k->state == CONN_BUSY && k->call != NULL && k->fd == f->fd) {
            drive(p, k->call);
        }
    }
    p->nfds = 0;
    /* libcurl's timers and the deadlines, over a copy of the list: ending a call changes it
     * (the calls themselves are the caller's, valid throughout) */
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
    now = now_ms();
    for (i = 0; i < n; i++) {
        pool_call *c = p->scratch[i];
        pool_conn *k = c->conn;
        if (c->state == PCALL_CONNECTING && k != NULL && k->timer_at >= 0 && k->timer_at <= now) {
            int running = 0;
            k->timer_at = -1;
            curl_multi_socket_action(k->multi, CURL_SOCKET_TIMEOUT, 0, &running);
            check_connected(p, k);
        }
        if (c->state == PCALL_DONE || now < c->deadline)
            continue;
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
