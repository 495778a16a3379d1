/* The one-call path's own HTTP/1.1 on a libcurl connection (see wire.h). */
#include "wire.h"
#include "answer.h"
#include "curl_handle.h"
#include "protocol.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void ddb_wire_init(wire *w)
{
    memset(w, 0, sizeof *w);
    w->fd = CURL_SOCKET_BAD;
    ddb_buf_init(&w->out);
    ddb_buf_init(&w->in);
    ddb_buf_init(&w->body);
}

void ddb_wire_disconnect(wire *w)
{
    if (w->easy != NULL)
        curl_easy_cleanup(w->easy);
    w->easy = NULL;
    w->fd = CURL_SOCKET_BAD;
    free(w->url);
    w->url = NULL;
}

void ddb_wire_close(wire *w)
{
    ddb_wire_disconnect(w);
    ddb_buf_free(&w->out);
    ddb_buf_free(&w->in);
    ddb_buf_free(&w->body);
}

/* Whether url can go over the wire: http(s), no path beyond "/", no query, no user
 * information, and no proxy in the environment (those keep to libcurl's own transfers). */
int ddb_wire_accepts(const char *url)
{
    static const char *const proxies[] = {"http_proxy", "https_proxy", "HTTPS_PROXY",
                                          "all_proxy", "ALL_PROXY", NULL};
    const char *host, *rest;
    int i;
    if (strncmp(url, "http://", 7) == 0)
        host = url + 7;
    else if (strncmp(url, "https://", 8) == 0)
        host = url + 8;
    else
        return 0;
    rest = host + strcspn(host, "/?#@");
    if (*rest == '?' || *rest == '#' || *rest == '@' || (*rest == '/' && strcmp(rest, "/") != 0))
        return 0;
    for (i = 0; proxies[i] != NULL; i++) {
        const char *v = getenv(proxies[i]);
        if (v != NULL && *v != '\0')
            return 0;
    }
    return 1;
}

int ddb_wire_serves(const wire *w, const char *url)
{
    /* a connection made for url was accepted already: no second look at the environment */
    return (w->easy != NULL && strcmp(w->url, url) == 0) || ddb_wire_accepts(url);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for events or the deadline passes: 1 ready, 0 timed out. */
static int wait_fd(curl_socket_t fd, short events, long long deadline)
{
    for (;;) {
        struct pollfd p;
        long long left = deadline - now_ms();
        int r;
        if (left <= 0)
            return 0;
        p.fd = fd;
        p.events = events;
        p.revents = 0;
        r = poll(&p, 1, left > 1000000 ? 1000000 : (int)left);
        if (r > 0)
            return 1;   /* errors and hang-ups show up in the send or receive that follows */
        if (r < 0 && errno != EINTR)
            return 1;
    }
}

static int fail(wire *w, const char *code, const char *applied, const char *retry_class,
                const char *message)
{
    w->rc = CURLE_OK;
    w->code = code;
    w->applied = applied;
    w->retry_class = retry_class;
    snprintf(w->message, sizeof w->message, "%s", message);
    ddb_wire_disconnect(w);
    return WIRE_FAILED;
}


static int connect_to(wire *w, const wire_opts *o, const char *url, long long deadline)
{
    long left = (long)(deadline - now_ms());
    char *copy;
    curl_socket_t fd = CURL_SOCKET_BAD;

    ddb_wire_disconnect(w);
    if (left < 1)
        left = 1;
    copy = malloc(strlen(url) + 1);
    w->easy = curl_easy_init();
    if (copy == NULL || w->easy == NULL) {
        free(copy);
        w->rc = CURLE_OUT_OF_MEMORY;
        return WIRE_CONNECT_FAILED;
    }
    strcpy(copy, url);
    w->url = copy;
    ddb_curl_handle_connect_only(w->easy, url, o->errbuf, o->ca_bundle, o->connect_timeout_ms,
                                 left);
    w->rc = curl_easy_perform(w->easy);
    if (w->rc == CURLE_OK &&
        (curl_easy_getinfo(w->easy, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK ||
         fd == CURL_SOCKET_BAD))
        w->rc = CURLE_COULDNT_CONNECT;
    if (w->rc != CURLE_OK)
        return WIRE_CONNECT_FAILED;
    w->fd = fd;
    w->connects++;
    return WIRE_OK;
}

/* Sends the whole request. On a connection kept from an earlier answer that turns out to be
 * closed before a byte of this request went out, connects again once: nothing was sent. */
static int send_all(wire *w, const wire_opts *o, const char *url, long long deadline,
                    int reused)
{
    size_t sent = 0;
    while (sent < w->out.len) {
        size_t n = 0;
        CURLcode rc;
        /* checked before every write, not only when one would block: a server that reads
         * slowly but steadily must not hold the call past its deadline */
        if (now_ms() >= deadline)
            return fail(w, "Timeout", PROTO_APPLIED_NO, "timeout",
                        "timed out sending the request (not all of it left: not applied)");
        rc = curl_easy_send(w->easy, w->out.data + sent, w->out.len - sent, &n);
        if (rc == CURLE_AGAIN) {
            if (!wait_fd(w->fd, POLLOUT, deadline))
                return fail(w, "Timeout", PROTO_APPLIED_NO, "timeout",
                            "timed out sending the request (not all of it left: not applied)");
            continue;
        }
        if (rc != CURLE_OK) {
            int r;
            if (reused && sent == 0) {
                reused = 0;
                if ((r = connect_to(w, o, url, deadline)) != WIRE_OK)
                    return r;
                continue;
            }
            /* a request cut short cannot be run by the server */
            return fail(w, "NetworkError", PROTO_APPLIED_NO, "transient",
                        "the connection failed while the request was being sent (not all of "
                        "it left: not applied)");
        }
        sent += n;
    }
    return WIRE_OK;
}

/* Reads until the answer is complete (answer.c: its framing, its limits, what a failure
 * means). The request has left: any failure may follow its being applied. */
static int receive(wire *w, long long deadline, size_t max, wire_answer *a)
{
    answer ans;
    static const char *const MAYBE = PROTO_APPLIED_MAYBE;
    int r;

    ddb_answer_start(&ans, &w->in, &w->body, max);
    for (;;) {
        size_t n = 0, room;
        char *at;
        CURLcode rc;
        /* before every read, not only when one would block: a server that keeps sending
         * never makes a read block */
        if (now_ms() >= deadline)
            return fail(w, "Timeout", MAYBE, "timeout",
                        "timed out reading the answer (the request was sent)");
        if ((at = ddb_answer_space(&ans, &room)) == NULL)
            return fail(w, "NetworkError", MAYBE, "transient", "out of memory reading the answer");
        rc = curl_easy_recv(w->easy, at, room, &n);
        if (rc == CURLE_AGAIN) {
            if (!wait_fd(w->fd, POLLIN, deadline))
                return fail(w, "Timeout", MAYBE, "timeout",
                            "timed out waiting for the answer (the request was sent)");
            continue;
        }
        if (rc != CURLE_OK)
            return fail(w, "NetworkError", MAYBE, "transient", curl_easy_strerror(rc));
        r = n == 0 ? ddb_answer_closed(&ans) : ddb_answer_received(&ans, n);
        if (r == ANSWER_DONE)
            break;
        if (r != ANSWER_MORE) {
            const char *code, *cls;
            char message[160];
            ddb_answer_failure(&ans, r, &code, &cls, message, sizeof message);
            return fail(w, code, MAYBE, cls, message);
        }
    }
    a->head = ans.head;
    if (!ddb_answer_keep(&ans))
        a->head.close = 1;
    a->head_view = ddb_buf_view(w->in.data, a->head.head_len);
    a->body = ddb_answer_body(&ans, &a->body_len);
    return WIRE_OK;
}

int ddb_wire_exchange(wire *w, const wire_opts *o, const char *url, const char *const *lines,
                      size_t nlines, const char *body, size_t body_len, long timeout_ms,
                      wire_answer *a)
{
    long long deadline = now_ms() + timeout_ms;
    int reused = w->easy != NULL && strcmp(w->url, url) == 0 && ddb_curl_still_open(w->easy, w->fd), r;

    if (ddb_http1_post(&w->out, "/", 1, lines, nlines, body, body_len) != 0)
        return fail(w, "NetworkError", PROTO_APPLIED_NO, "transient",
                    "out of memory building the request");
    if (!reused && (r = connect_to(w, o, url, deadline)) != WIRE_OK)
        return r;
    if ((r = send_all(w, o, url, deadline, reused)) != WIRE_OK)
        return r;
    if ((r = receive(w, deadline, o->max_answer, a)) != WIRE_OK)
        return r;
    if (a->head.close)
        ddb_wire_disconnect(w);   /* the answer stays readable: its buffers are kept */
    return WIRE_OK;
}
