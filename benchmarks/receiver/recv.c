/*
 * recv: the benchmark's load generator and checker (C, epoll, one thread).
 *
 * Opens N WebSocket client connections to 127.0.0.1, subscribes each one (a plain
 * flowwire-style text frame, or the Engine.IO / Socket.IO v4 exchange with --sio),
 * then reads every server frame, extracts the event's stream id ("<ms>-<seq>") with a
 * cheap scan, and checks per connection that ids strictly increase (no duplicate, no
 * reordering). Latency is CLOCK_REALTIME at receive minus the id's millisecond.
 * Answers pings (WebSocket and Engine.IO), inflates permessage-deflate when asked.
 *
 * Driven through stdin, one command per line, one JSON line per answer on stdout:
 *   reset                   zero the counters, the latency histogram and the CPU clock
 *   wait TOTAL TIMEOUT_MS   answer when TOTAL events were received since reset (or the
 *                           timeout, or every connection closed): a report
 *   report                  a report now
 *   quit                    close everything (RST, no TIME_WAIT) and exit
 * After start-up it prints {"event":"ready",...} once every connection is subscribed
 * (or failed, or --connect-timeout passed).
 *
 * Options: --port --host --path (with ?token=) --conns --subs FILE (one subscribe
 * message per line; connection i sends line i mod lines) --inflight (handshakes at
 * once) --sources K (bind to 127.0.0.1..K) --sio --sio-auth '40{...}' (Socket.IO)
 * --deflate (offer permessage-deflate) --connect-timeout MS; --spin (epoll_wait without
 * sleeping: a diagnostic only, it takes the whole core from redis-server).
 *
 * Per connection, the report gives the count and a hash (sum of splitmix64 of
 * (ms << 20) ^ seq, mod 2^64) of the ids received since reset: the runner compares
 * them with the ids it published, so "every event, exactly once, in order" is checked.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum {
    ST_IDLE = 0,      /* not started yet */
    ST_CONNECTING,    /* TCP connect in progress */
    ST_HANDSHAKE,     /* HTTP upgrade sent, waiting for 101 */
    ST_SIO_OPEN,      /* waiting for the Engine.IO open packet "0{...}" */
    ST_SIO_CONNECT,   /* "40{auth}" sent, waiting for "40{...}" */
    ST_WAIT_SUB,      /* subscribe sent, waiting for the confirmation */
    ST_READY,         /* subscribed: events flow */
    ST_CLOSED
};

typedef struct {
    int fd;
    int state;
    int group;
    int close_code;
    uint8_t *carry;
    uint32_t carry_len, carry_cap;
    uint8_t *hs;        /* handshake response being read */
    uint32_t hs_len;
    uint64_t count;     /* events since reset */
    uint64_t hash;
    uint64_t prev_ms, prev_seq;
    uint64_t order_viol, dups;
    z_stream *z;
    int z_reset;        /* server_no_context_takeover */
} conn_t;

/* ---- options ---------------------------------------------------------------------- */
static int opt_port = 0;
static const char *opt_host = "127.0.0.1";
static const char *opt_path = "/ws";
static int opt_conns = 1;
static int opt_inflight = 200;
static int opt_sio = 0;
static int opt_deflate = 0;
static int opt_sources = 1;
static int opt_spin = 0;
static int opt_connect_timeout_ms = 120000;
static const char *opt_sio_auth = "40";
static char **sub_lines = NULL; /* subscribe payload per group */
static int n_groups = 0;

/* ---- state ------------------------------------------------------------------------ */
static conn_t *conns;
static int epfd;
static int n_started = 0, n_ready = 0, n_failed = 0, n_closed = 0, n_inflight = 0;
static int ready_printed = 0;
static uint8_t *rbuf;
static size_t rbuf_cap = 4 << 20;
static uint8_t *zbuf;
static size_t zbuf_cap = 4 << 20;

#define HIST_STEP_US 20
#define HIST_N 1000000 /* 20 s */
static uint64_t *hist;
static uint64_t lat_max_us = 0, lat_count = 0;
static uint64_t total = 0, pings = 0, sio_pings = 0, ctrl_frames = 0, bad_frames = 0;
static uint64_t no_id = 0, deflated = 0;
static double t_first = 0, t_last = 0;
static struct rusage ru0;
static double wait_deadline = 0;
static uint64_t wait_total = 0;
static int waiting = 0;
static double start_time;
static int close_codes[5000];

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t real_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000ull + (uint64_t)ts.tv_nsec / 1000ull;
}

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void die(const char *msg) {
    fprintf(stderr, "recv: %s: %s\n", msg, strerror(errno));
    exit(2);
}

/* ---- sending (tiny frames only: subscribe, pong, Engine.IO) ------------------------- */
static void send_frame(conn_t *c, int opcode, const uint8_t *payload, size_t n) {
    uint8_t buf[4096 + 14];
    size_t h = 0;
    if (n > 4096) return;
    buf[h++] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        buf[h++] = (uint8_t)(0x80 | n);
    } else {
        buf[h++] = 0x80 | 126;
        buf[h++] = (uint8_t)(n >> 8);
        buf[h++] = (uint8_t)(n & 0xff);
    }
    uint32_t r = (uint32_t)random();
    uint8_t mask[4] = {(uint8_t)r, (uint8_t)(r >> 8), (uint8_t)(r >> 16), (uint8_t)(r >> 24)};
    memcpy(buf + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++) buf[h + i] = payload[i] ^ mask[i & 3];
    ssize_t w = send(c->fd, buf, h + n, MSG_NOSIGNAL);
    (void)w; /* tiny frames on an idle send buffer: a short write would be a bug here */
}

static void send_text(conn_t *c, const char *s) { send_frame(c, 0x1, (const uint8_t *)s, strlen(s)); }

/* ---- connections --------------------------------------------------------------------- */
static void conn_close(conn_t *c, int code) {
    if (c->state == ST_CLOSED) return;
    int was_ready = c->state == ST_READY;
    if (c->state != ST_READY && c->state != ST_IDLE) {
        n_inflight--;
        n_failed++;
    }
    if (was_ready) n_closed++;
    c->state = ST_CLOSED;
    c->close_code = code;
    if (code >= 0 && code < 5000) close_codes[code]++;
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
}

static void conn_start(int i) {
    conn_t *c = &conns[i];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt_sources > 1) {
        struct sockaddr_in src = {0};
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(i % opt_sources));
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) die("bind");
    }
    struct sockaddr_in dst = {0};
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)opt_port);
    inet_pton(AF_INET, opt_host, &dst.sin_addr);
    c->fd = fd;
    c->state = ST_CONNECTING;
    c->group = n_groups ? i % n_groups : 0;
    n_started++;
    n_inflight++;
    int r = connect(fd, (struct sockaddr *)&dst, sizeof dst);
    if (r < 0 && errno != EINPROGRESS) {
        conn_close(c, 1);
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = (uint32_t)i};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
}

static void start_more(void) {
    while (n_started < opt_conns && n_inflight < opt_inflight) conn_start(n_started);
}

static void send_handshake(conn_t *c) {
    char req[8192];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                     opt_path, opt_host, opt_port,
                     opt_deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                                 : "");
    if (send(c->fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        conn_close(c, 2);
        return;
    }
    c->state = ST_HANDSHAKE;
}

static void became_ready(conn_t *c) {
    c->state = ST_READY;
    n_inflight--;
    n_ready++;
}

/* ---- event frames -------------------------------------------------------------------- */
static void on_event(conn_t *c, const uint8_t *p, size_t n, uint64_t now_us, double now_m) {
    size_t lim = n < 512 ? n : 512;
    const uint8_t *q = memmem(p, lim, "\"id\":\"", 6);
    if (!q) {
        no_id++;
        return;
    }
    q += 6;
    const uint8_t *end = p + n;
    uint64_t ms = 0, seq = 0;
    while (q < end && *q >= '0' && *q <= '9') ms = ms * 10 + (uint64_t)(*q++ - '0');
    if (q >= end || *q != '-') {
        bad_frames++;
        return;
    }
    q++;
    while (q < end && *q >= '0' && *q <= '9') seq = seq * 10 + (uint64_t)(*q++ - '0');
    if (ms < c->prev_ms || (ms == c->prev_ms && seq <= c->prev_seq)) {
        if (ms == c->prev_ms && seq == c->prev_seq)
            c->dups++;
        else
            c->order_viol++;
    }
    c->prev_ms = ms;
    c->prev_seq = seq;
    c->count++;
    c->hash += splitmix64((ms << 20) ^ seq);
    total++;
    uint64_t sent_us = ms * 1000ull;
    uint64_t lat = now_us > sent_us ? now_us - sent_us : 0;
    uint64_t b = lat / HIST_STEP_US;
    hist[b < HIST_N ? b : HIST_N - 1]++;
    if (lat > lat_max_us) lat_max_us = lat;
    lat_count++;
    if (t_first == 0) t_first = now_m;
    t_last = now_m;
}

static void on_text(conn_t *c, const uint8_t *p, size_t n, uint64_t now_us, double now_m) {
    if (opt_sio) {
        if (n == 1 && p[0] == '2') { /* Engine.IO ping */
            send_text(c, "3");
            sio_pings++;
            return;
        }
        switch (c->state) {
        case ST_SIO_OPEN:
            if (n && p[0] == '0') {
                send_text(c, opt_sio_auth);
                c->state = ST_SIO_CONNECT;
            }
            return;
        case ST_SIO_CONNECT:
            if (n >= 2 && p[0] == '4' && p[1] == '0') {
                send_text(c, sub_lines[c->group]);
                c->state = ST_WAIT_SUB;
            } else if (n >= 2 && p[0] == '4' && p[1] == '4') {
                conn_close(c, 3); /* connect refused */
            }
            return;
        case ST_WAIT_SUB:
            if (n >= 14 && memcmp(p, "42[\"subscribed\"", 14) == 0) became_ready(c);
            return;
        case ST_READY:
            if (n >= 2 && p[0] == '4' && p[1] == '2')
                on_event(c, p, n, now_us, now_m);
            else
                ctrl_frames++;
            return;
        default:
            return;
        }
    }
    if (c->state == ST_WAIT_SUB) {
        size_t lim = n < 64 ? n : 64;
        if (memmem(p, lim, "subscribed", 10)) became_ready(c);
        return;
    }
    if (c->state == ST_READY) {
        size_t lim = n < 48 ? n : 48;
        /* control replies carry no stream id; events all do */
        if (memmem(p, lim, "\"type\":\"pong\"", 13) || memmem(p, lim, "\"type\":\"subscribed\"", 19) ||
            memmem(p, lim, "\"type\":\"error\"", 14))
            ctrl_frames++;
        else
            on_event(c, p, n, now_us, now_m);
    }
}

static int inflate_msg(conn_t *c, const uint8_t *p, size_t n, size_t *out_n) {
    static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
    z_stream *z = c->z;
    z->next_out = zbuf;
    z->avail_out = (uInt)zbuf_cap;
    z->next_in = (Bytef *)p;
    z->avail_in = (uInt)n;
    int r = inflate(z, Z_NO_FLUSH);
    if (r != Z_OK && r != Z_BUF_ERROR && r != Z_STREAM_END) return -1;
    z->next_in = (Bytef *)tail;
    z->avail_in = 4;
    r = inflate(z, Z_SYNC_FLUSH);
    if (r != Z_OK && r != Z_BUF_ERROR && r != Z_STREAM_END) return -1;
    *out_n = zbuf_cap - z->avail_out;
    if (c->z_reset) inflateReset(z);
    return 0;
}

/* Parse complete frames in p[0..n); return bytes consumed. */
static size_t parse_frames(conn_t *c, const uint8_t *p, size_t n, uint64_t now_us, double now_m) {
    size_t off = 0;
    while (n - off >= 2 && c->state != ST_CLOSED) {
        const uint8_t *f = p + off;
        int op = f[0] & 0x0f, rsv1 = f[0] & 0x40;
        uint64_t plen = f[1] & 0x7f;
        size_t h = 2;
        if (plen == 126) {
            if (n - off < 4) break;
            plen = ((uint64_t)f[2] << 8) | f[3];
            h = 4;
        } else if (plen == 127) {
            if (n - off < 10) break;
            plen = 0;
            for (int i = 0; i < 8; i++) plen = (plen << 8) | f[2 + i];
            h = 10;
        }
        if (f[1] & 0x80) h += 4; /* servers do not mask; tolerate it anyway */
        if (n - off < h + plen) break;
        const uint8_t *pl = f + h;
        switch (op) {
        case 0x1:
        case 0x0:
            if (!(f[0] & 0x80)) bad_frames++; /* fragmented messages are not expected */
            if (rsv1 && c->z) {
                size_t out_n;
                deflated++;
                if (inflate_msg(c, pl, (size_t)plen, &out_n) == 0)
                    on_text(c, zbuf, out_n, now_us, now_m);
                else
                    bad_frames++;
            } else {
                on_text(c, pl, (size_t)plen, now_us, now_m);
            }
            break;
        case 0x9:
            pings++;
            send_frame(c, 0xA, pl, (size_t)plen);
            break;
        case 0x8: {
            int code = plen >= 2 ? (pl[0] << 8) | pl[1] : 1005;
            conn_close(c, code);
            break;
        }
        case 0xA:
            break;
        default:
            bad_frames++;
        }
        off += h + (size_t)plen;
    }
    return off;
}

static void on_handshake(conn_t *c, const uint8_t *p, size_t n, uint64_t now_us, double now_m) {
    if (!c->hs) c->hs = malloc(8192);
    size_t room = 8191 - c->hs_len;
    size_t take = n < room ? n : room;
    memcpy(c->hs + c->hs_len, p, take);
    c->hs_len += (uint32_t)take;
    c->hs[c->hs_len] = 0;
    char *end = strstr((char *)c->hs, "\r\n\r\n");
    if (!end) {
        if (c->hs_len >= 8191) conn_close(c, 4);
        return;
    }
    size_t hdr_len = (size_t)(end + 4 - (char *)c->hs);
    if (strncmp((char *)c->hs, "HTTP/1.1 101", 12) != 0) {
        conn_close(c, 5);
        return;
    }
    if (opt_deflate && strcasestr((char *)c->hs, "permessage-deflate")) {
        c->z = calloc(1, sizeof(z_stream));
        if (inflateInit2(c->z, -15) != Z_OK) die("inflateInit2");
        c->z_reset = strcasestr((char *)c->hs, "server_no_context_takeover") != NULL;
    }
    /* bytes after the response headers that came in the same read are frames */
    size_t extra = hdr_len <= c->hs_len ? c->hs_len - hdr_len : 0;
    size_t extra_in_p = extra <= take ? extra : take;
    free(c->hs);
    c->hs = NULL;
    c->hs_len = 0;
    if (opt_sio) {
        c->state = ST_SIO_OPEN;
    } else {
        c->state = ST_WAIT_SUB;
        send_text(c, sub_lines[c->group]);
    }
    if (extra_in_p) {
        const uint8_t *rest = p + take - extra_in_p;
        size_t used = parse_frames(c, rest, extra_in_p, now_us, now_m);
        if (used < extra_in_p && c->state != ST_CLOSED) {
            c->carry_cap = (uint32_t)(extra_in_p - used + 4096);
            c->carry = malloc(c->carry_cap);
            memcpy(c->carry, rest + used, extra_in_p - used);
            c->carry_len = (uint32_t)(extra_in_p - used);
        }
    }
}

static void on_readable(conn_t *c) {
    size_t pre = c->carry_len;
    if (pre) memcpy(rbuf, c->carry, pre);
    ssize_t r = recv(c->fd, rbuf + pre, rbuf_cap - pre, 0);
    if (r == 0) {
        conn_close(c, 1006);
        return;
    }
    if (r < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        conn_close(c, 1006);
        return;
    }
    uint64_t now_us = real_us();
    double now_m = mono_now();
    size_t n = pre + (size_t)r;
    if (c->state == ST_HANDSHAKE) {
        on_handshake(c, rbuf, n, now_us, now_m);
        return;
    }
    size_t used = parse_frames(c, rbuf, n, now_us, now_m);
    if (c->state == ST_CLOSED) return;
    size_t left = n - used;
    if (left > c->carry_cap) {
        c->carry_cap = (uint32_t)(left + 4096);
        c->carry = realloc(c->carry, c->carry_cap);
    }
    if (left) memcpy(c->carry, rbuf + used, left);
    c->carry_len = (uint32_t)left;
}

static void on_writable(conn_t *c, int idx) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        conn_close(c, 6);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)idx};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    send_handshake(c);
}

/* ---- reports --------------------------------------------------------------------------- */
static uint64_t percentile(double q) {
    if (!lat_count) return 0;
    uint64_t target = (uint64_t)((double)lat_count * q);
    if (target >= lat_count) target = lat_count - 1;
    uint64_t acc = 0;
    for (uint64_t i = 0; i < HIST_N; i++) {
        acc += hist[i];
        if (acc > target) return i * HIST_STEP_US + HIST_STEP_US / 2;
    }
    return lat_max_us;
}

static void report(const char *kind, int timed_out) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double ucpu = (double)(ru.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                  (double)(ru.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6;
    double scpu = (double)(ru.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                  (double)(ru.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    uint64_t order = 0, dups = 0;
    int open = 0;
    for (int i = 0; i < opt_conns; i++) {
        order += conns[i].order_viol;
        dups += conns[i].dups;
        open += conns[i].state == ST_READY;
    }
    printf("{\"event\":\"%s\",\"timed_out\":%s,\"conns\":%d,\"open\":%d,\"closed\":%d,\"failed\":%d,"
           "\"received\":%llu,\"order_violations\":%llu,\"duplicates\":%llu,\"no_id\":%llu,"
           "\"bad_frames\":%llu,\"control_frames\":%llu,\"pings\":%llu,\"sio_pings\":%llu,\"deflated\":%llu,"
           "\"lat_count\":%llu,\"lat_p50_us\":%llu,\"lat_p99_us\":%llu,\"lat_max_us\":%llu,"
           "\"t_first\":%.6f,\"t_last\":%.6f,\"t_now\":%.6f,\"cpu_user_s\":%.4f,\"cpu_sys_s\":%.4f,"
           "\"close_codes\":{",
           kind, timed_out ? "true" : "false", opt_conns, open, n_closed, n_failed,
           (unsigned long long)total, (unsigned long long)order, (unsigned long long)dups,
           (unsigned long long)no_id, (unsigned long long)bad_frames, (unsigned long long)ctrl_frames,
           (unsigned long long)pings, (unsigned long long)sio_pings, (unsigned long long)deflated,
           (unsigned long long)lat_count, (unsigned long long)percentile(0.5),
           (unsigned long long)percentile(0.99), (unsigned long long)lat_max_us, t_first, t_last,
           mono_now(), ucpu, scpu);
    int first = 1;
    for (int i = 0; i < 5000; i++)
        if (close_codes[i]) {
            printf("%s\"%d\":%d", first ? "" : ",", i, close_codes[i]);
            first = 0;
        }
    printf("},\"counts\":[");
    for (int i = 0; i < opt_conns; i++) printf("%s%llu", i ? "," : "", (unsigned long long)conns[i].count);
    printf("],\"hashes\":[");
    for (int i = 0; i < opt_conns; i++) printf("%s%llu", i ? "," : "", (unsigned long long)conns[i].hash);
    printf("]}\n");
    fflush(stdout);
}

static void reset(void) {
    for (int i = 0; i < opt_conns; i++) {
        conns[i].count = 0;
        conns[i].hash = 0;
        conns[i].order_viol = 0;
        conns[i].dups = 0;
    }
    memset(hist, 0, sizeof(uint64_t) * HIST_N);
    lat_max_us = lat_count = total = pings = sio_pings = ctrl_frames = bad_frames = no_id = deflated = 0;
    t_first = t_last = 0;
    getrusage(RUSAGE_SELF, &ru0);
    printf("{\"event\":\"reset\",\"t_now\":%.6f}\n", mono_now());
    fflush(stdout);
}

static void quit(void) {
    struct linger lg = {1, 0};
    for (int i = 0; i < opt_conns; i++)
        if (conns[i].fd >= 0) {
            setsockopt(conns[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            close(conns[i].fd);
        }
    exit(0);
}

static char cmdbuf[4096];
static size_t cmdlen = 0;

static void on_stdin(void) {
    ssize_t r = read(0, cmdbuf + cmdlen, sizeof cmdbuf - 1 - cmdlen);
    if (r <= 0) quit();
    cmdlen += (size_t)r;
    char *nl;
    while ((nl = memchr(cmdbuf, '\n', cmdlen))) {
        *nl = 0;
        unsigned long long a = 0, b = 0;
        if (strcmp(cmdbuf, "reset") == 0) {
            reset();
        } else if (strcmp(cmdbuf, "report") == 0) {
            report("report", 0);
        } else if (sscanf(cmdbuf, "wait %llu %llu", &a, &b) == 2) {
            waiting = 1;
            wait_total = a;
            wait_deadline = mono_now() + (double)b / 1000.0;
        } else if (strcmp(cmdbuf, "quit") == 0) {
            quit();
        }
        size_t used = (size_t)(nl - cmdbuf) + 1;
        memmove(cmdbuf, nl + 1, cmdlen - used);
        cmdlen -= used;
    }
}

static void load_subs(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) die("subscribe file");
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (!n) continue;
        sub_lines = realloc(sub_lines, sizeof(char *) * (size_t)(n_groups + 1));
        sub_lines[n_groups++] = strdup(line);
    }
    fclose(f);
    if (!n_groups) {
        fprintf(stderr, "recv: empty subscribe file\n");
        exit(2);
    }
}

int main(int argc, char **argv) {
    static struct option longopts[] = {
        {"port", required_argument, 0, 'p'},     {"host", required_argument, 0, 'H'},
        {"path", required_argument, 0, 'P'},     {"conns", required_argument, 0, 'n'},
        {"subs", required_argument, 0, 's'},     {"inflight", required_argument, 0, 'i'},
        {"sio", no_argument, 0, 'S'},            {"sio-auth", required_argument, 0, 'a'},
        {"deflate", no_argument, 0, 'd'},        {"sources", required_argument, 0, 'k'},
        {"connect-timeout", required_argument, 0, 't'}, {"spin", no_argument, 0, 'x'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'p': opt_port = atoi(optarg); break;
        case 'H': opt_host = optarg; break;
        case 'P': opt_path = optarg; break;
        case 'n': opt_conns = atoi(optarg); break;
        case 's': load_subs(optarg); break;
        case 'i': opt_inflight = atoi(optarg); break;
        case 'S': opt_sio = 1; break;
        case 'a': opt_sio_auth = optarg; break;
        case 'd': opt_deflate = 1; break;
        case 'k': opt_sources = atoi(optarg); break;
        case 't': opt_connect_timeout_ms = atoi(optarg); break;
        case 'x': opt_spin = 1; break;
        default: fprintf(stderr, "recv: bad option\n"); return 2;
        }
    }
    if (!opt_port || !n_groups) {
        fprintf(stderr, "usage: recv --port P --subs FILE [--conns N] [--path /ws?token=..] [--sio] ...\n");
        return 2;
    }
    struct rlimit rl = {(rlim_t)opt_conns + 1024, (rlim_t)opt_conns + 1024};
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) die("setrlimit");
    srandom((unsigned)getpid());
    conns = calloc((size_t)opt_conns, sizeof(conn_t));
    for (int i = 0; i < opt_conns; i++) conns[i].fd = -1;
    rbuf = malloc(rbuf_cap);
    zbuf = malloc(zbuf_cap);
    hist = calloc(HIST_N, sizeof(uint64_t));
    epfd = epoll_create1(0);
    if (epfd < 0) die("epoll_create1");
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    struct epoll_event sev = {.events = EPOLLIN, .data.u32 = 0xffffffffu};
    epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &sev);
    getrusage(RUSAGE_SELF, &ru0);
    start_time = mono_now();
    start_more();

    struct epoll_event evs[1024];
    for (;;) {
        int n = epoll_wait(epfd, evs, 1024, opt_spin ? 0 : 10);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int k = 0; k < n; k++) {
            uint32_t idx = evs[k].data.u32;
            if (idx == 0xffffffffu) {
                on_stdin();
                continue;
            }
            conn_t *c = &conns[idx];
            if (c->state == ST_CLOSED) continue;
            if (c->state == ST_CONNECTING) {
                if (evs[k].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_writable(c, (int)idx);
                continue;
            }
            if (evs[k].events & EPOLLIN) {
                on_readable(c);
            } else if (evs[k].events & (EPOLLERR | EPOLLHUP)) {
                conn_close(c, 1006);
            }
        }
        start_more();
        double now = mono_now();
        if (!ready_printed) {
            int done = n_started == opt_conns && n_inflight == 0;
            int late = (now - start_time) * 1000.0 > opt_connect_timeout_ms;
            if (done || late) {
                ready_printed = 1;
                printf("{\"event\":\"ready\",\"connected\":%d,\"failed\":%d,\"pending\":%d,\"secs\":%.3f}\n",
                       n_ready, n_failed, n_inflight, now - start_time);
                fflush(stdout);
            }
        }
        if (waiting) {
            int all_closed = n_ready > 0 && n_closed >= n_ready;
            if (total >= wait_total || now > wait_deadline || all_closed) {
                waiting = 0;
                report("done", total < wait_total);
            }
        }
    }
}
