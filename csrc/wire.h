/* One kept-alive HTTP/1.1 connection that the libcurl transport's one-call path writes its
 * requests to and reads its answers from itself: libcurl makes the connection (DNS, TCP, TLS
 * and its checks) and moves the bytes (curl_easy_send/recv), but does not build or parse the
 * HTTP, which costs it more than the rest of a DynamoDB call (it formats each custom header
 * line a byte at a time). */
#ifndef DDB_WIRE_H
#define DDB_WIRE_H

#include <stddef.h>
#include <curl/curl.h>
#include "buf.h"
#include "http1.h"
#include "visibility.h"

DDB_HIDDEN_BEGIN

typedef struct wire {
    CURL *easy;              /* the CONNECT_ONLY handle holding the connection; NULL: none */
    curl_socket_t fd;
    char *url;               /* what the connection was made for */
    buf out;                 /* the request being sent */
    buf in;                  /* the answer as received */
    buf body;                /* a chunked answer's body, decoded */
    long connects;           /* connections made, for stats() */
    /* set when ddb_wire_exchange fails */
    CURLcode rc;             /* libcurl's code, CURLE_OK for an HTTP-level failure */
    const char *code, *applied, *retry_class;
    char message[160];
} wire;

/* The answer of a successful exchange; valid until the next exchange. */
typedef struct wire_answer {
    http1_head head;
    buf head_view;           /* the status line and headers (points into the wire) */
    const char *body;
    size_t body_len;
} wire_answer;

typedef struct wire_opts {
    char *errbuf;            /* libcurl's error buffer (CURL_ERROR_SIZE) */
    const char *ca_bundle;
    long connect_timeout_ms;
    size_t max_answer;       /* the longest answer body read (its head: HTTP1_MAX_HEAD) */
} wire_opts;

enum { WIRE_OK = 0, WIRE_CONNECT_FAILED, WIRE_FAILED };

void ddb_wire_init(wire *w);
/* Closes the connection, keeping the buffers (and so the last answer). */
void ddb_wire_disconnect(wire *w);
/* Closes the connection and frees the buffers. */
void ddb_wire_close(wire *w);
/* Whether url can go over the module's own HTTP/1.1: http(s), no path beyond "/", no
 * query, no user information, and no proxy in the environment (those keep to libcurl's own
 * transfers). Also the scheduler's rule (pool.h). */
int ddb_wire_accepts(const char *url);
/* Whether call() should take the wire for url: the kept connection was made for it, or
 * ddb_wire_accepts(url). */
int ddb_wire_serves(const wire *w, const char *url);
/* Sends "POST / HTTP/1.1", the lines, Content-Length and the body to url, on the kept
 * connection when it is alive and for the same URL, else on a new one, and reads the whole
 * answer, all within timeout_ms (checked before every read and write, so that a server that
 * keeps sending cannot hold the call past it) and o->max_answer. WIRE_OK fills a;
 * WIRE_CONNECT_FAILED leaves w->easy and w->rc for the caller to describe before ddb_wire_close
 * (nothing was sent); WIRE_FAILED fills w->code, message, applied and retry_class and closes
 * the connection. */
int ddb_wire_exchange(wire *w, const wire_opts *o, const char *url, const char *const *lines,
                      size_t nlines, const char *body, size_t body_len, long timeout_ms,
                      wire_answer *a);

DDB_HIDDEN_END

#endif
