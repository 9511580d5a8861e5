/* Helpers shared by the wasi:http service fixtures, over the C bindings that
 * build.rs generates with wit-bindgen-c for the world `service` in
 * wit/service.wit (the wasi:http 0.2.12 proxy world): read a request header,
 * answer with a status, headers and a body, copy a stream into a body. */
#ifndef AMPHI_FIXTURE_HTTP_H
#define AMPHI_FIXTURE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "service.h"

typedef exports_wasi_http_incoming_handler_own_incoming_request_t request_t;
typedef exports_wasi_http_incoming_handler_own_response_outparam_t outparam_t;

/* A response body being written: the body resource and its output stream. */
struct body {
    wasi_http_types_own_outgoing_body_t body;
    wasi_io_streams_own_output_stream_t stream;
};

/* The first value of header `name` of `request` as a NUL-terminated string
 * (malloc'ed, the caller frees it), or NULL when the request has no such header. */
char *request_header(request_t request, const char *name);

/* Sends the response head through `out`: `status`, `content-type: text/plain`
 * and the `extra` headers (name, value, name, value, ..., NULL; NULL for none),
 * and returns its body, to fill with body_write and close with body_finish. */
struct body response_start(outparam_t out, uint16_t status, const char *const *extra);

/* Writes `len` bytes to the body; false when the client went away. */
bool body_write(struct body *body, const void *data, size_t len);

/* Copies `input` into the body until the input closes; false on a stream error. */
bool body_copy(struct body *body, wasi_io_streams_borrow_input_stream_t input);

/* Ends the body (no trailers). */
void body_finish(struct body *body);

/* The whole response at once: head as response_start, then `text` as the body. */
void respond(outparam_t out, uint16_t status, const char *const *extra, const char *text);

/* Drops the request handle (the host frees it). */
void request_drop(request_t request);

#endif
