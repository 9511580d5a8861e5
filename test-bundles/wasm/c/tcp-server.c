/* tcp-server PORT [IPV4]: a WASI 0.2 component (after componentizing) that
 * listens on IPV4:PORT (default 0.0.0.0), prints "listening on PORT", accepts one
 * connection, writes "hello from wasm over tcp\n" to it and exits 0.
 *
 * wasi-libc here speaks only WASI preview 1, so the wasi:sockets functions are
 * imported directly with their canonical-ABI signatures (lowered by hand from
 * wit/deps/sockets.wit, version 0.2.12): resources are i32 handles, a variant is
 * flattened to its discriminant plus the joined payload slots, and any result
 * wider than one value comes back through a pointer to our memory (`ret`). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT(module, name) __attribute__((__import_module__(module), __import_name__(name)))
#define SOCKETS(iface) "wasi:sockets/" iface "@0.2.12"
#define IO(iface) "wasi:io/" iface "@0.2.12"

IMPORT(SOCKETS("instance-network"), "instance-network")
extern int32_t instance_network(void);

/* create-tcp-socket(address-family) -> result<tcp-socket, error-code> */
IMPORT(SOCKETS("tcp-create-socket"), "create-tcp-socket")
extern void create_tcp_socket(int32_t family, void *ret);

/* start-bind(network, ip-socket-address) -> result<_, error-code>; the address is
 * a variant: discriminant, then 11 slots (the ipv6 case is the widest). */
IMPORT(SOCKETS("tcp"), "[method]tcp-socket.start-bind")
extern void tcp_start_bind(int32_t self, int32_t network, int32_t disc, int32_t port, int32_t a0,
                           int32_t a1, int32_t a2, int32_t a3, int32_t p6, int32_t p7, int32_t p8,
                           int32_t p9, int32_t p10, int32_t p11, void *ret);
IMPORT(SOCKETS("tcp"), "[method]tcp-socket.finish-bind")
extern void tcp_finish_bind(int32_t self, void *ret);
IMPORT(SOCKETS("tcp"), "[method]tcp-socket.start-listen")
extern void tcp_start_listen(int32_t self, void *ret);
IMPORT(SOCKETS("tcp"), "[method]tcp-socket.finish-listen")
extern void tcp_finish_listen(int32_t self, void *ret);
/* accept() -> result<tuple<tcp-socket, input-stream, output-stream>, error-code> */
IMPORT(SOCKETS("tcp"), "[method]tcp-socket.accept")
extern void tcp_accept(int32_t self, void *ret);
IMPORT(SOCKETS("tcp"), "[method]tcp-socket.subscribe")
extern int32_t tcp_subscribe(int32_t self);

IMPORT(IO("poll"), "[method]pollable.block")
extern void pollable_block(int32_t self);
IMPORT(IO("poll"), "[resource-drop]pollable")
extern void pollable_drop(int32_t self);

/* blocking-write-and-flush(list<u8>) -> result<_, stream-error> */
IMPORT(IO("streams"), "[method]output-stream.blocking-write-and-flush")
extern void output_blocking_write_and_flush(int32_t self, const void *ptr, int32_t len, void *ret);

/* The error-code enum's value for would-block (its 9th case). */
#define ERROR_WOULD_BLOCK 8

/* A result<T, error-code> as the canonical ABI lays it out: the discriminant
 * byte, then the payload at the payload's alignment (4 for handles). */
struct result {
    uint8_t is_err;
    uint8_t err_inline; /* result<_, error-code>: the error byte sits at offset 1 */
    uint8_t pad[2];
    int32_t payload[3]; /* ok handles, or the error byte at payload[0] */
};

static int failed(const char *what, const struct result *r, int inline_err) {
    if (!r->is_err) {
        return 0;
    }
    int code = inline_err ? r->err_inline : (r->payload[0] & 0xff);
    fprintf(stderr, "tcp-server: %s failed: error-code %d\n", what, code);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: tcp-server PORT [IPV4]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    unsigned a[4] = {0, 0, 0, 0};
    if (argc > 2 && sscanf(argv[2], "%u.%u.%u.%u", &a[0], &a[1], &a[2], &a[3]) != 4) {
        fprintf(stderr, "tcp-server: bad address %s\n", argv[2]);
        return 2;
    }

    struct result r;
    int32_t network = instance_network();
    memset(&r, 0, sizeof r);
    create_tcp_socket(0 /* ipv4 */, &r);
    if (failed("create-tcp-socket", &r, 0)) return 1;
    int32_t sock = r.payload[0];

    memset(&r, 0, sizeof r);
    tcp_start_bind(sock, network, 0 /* ipv4 */, port, a[0], a[1], a[2], a[3], 0, 0, 0, 0, 0, 0, &r);
    if (failed("start-bind", &r, 1)) return 1;
    memset(&r, 0, sizeof r);
    tcp_finish_bind(sock, &r);
    if (failed("finish-bind", &r, 1)) return 1;
    memset(&r, 0, sizeof r);
    tcp_start_listen(sock, &r);
    if (failed("start-listen", &r, 1)) return 1;
    memset(&r, 0, sizeof r);
    tcp_finish_listen(sock, &r);
    if (failed("finish-listen", &r, 1)) return 1;

    printf("listening on %d\n", port);
    fflush(stdout);

    for (;;) {
        memset(&r, 0, sizeof r);
        tcp_accept(sock, &r);
        if (!r.is_err) {
            break;
        }
        if ((r.payload[0] & 0xff) != ERROR_WOULD_BLOCK) {
            return failed("accept", &r, 0);
        }
        int32_t ready = tcp_subscribe(sock);
        pollable_block(ready);
        pollable_drop(ready);
    }
    int32_t output = r.payload[2];

    static const char line[] = "hello from wasm over tcp\n";
    struct {
        uint8_t is_err;
        uint8_t pad[3];
        uint8_t error_kind;
        uint8_t pad2[3];
        int32_t error;
    } w;
    memset(&w, 0, sizeof w);
    output_blocking_write_and_flush(output, line, (int32_t)strlen(line), &w);
    if (w.is_err) {
        fprintf(stderr, "tcp-server: write failed (stream-error %d)\n", w.error_kind);
        return 1;
    }
    puts("served one connection");
    return 0;
}
