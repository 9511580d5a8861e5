/* See http.h. Ownership follows the WIT: an `own` handle is dropped exactly
 * once, children (a stream of a body, headers of a request) before their
 * parent, as the host checks. */
#include "http.h"

#include <stdlib.h>
#include <string.h>

/* blocking-write-and-flush takes at most 4096 bytes a call. */
#define WRITE_CHUNK 4096
#define READ_CHUNK 65536

static service_string_t str(const char *s) {
    return (service_string_t){(uint8_t *)s, strlen(s)};
}

char *request_header(request_t request, const char *name) {
    wasi_http_types_own_headers_t headers =
        wasi_http_types_method_incoming_request_headers(wasi_http_types_borrow_incoming_request(request));
    wasi_http_types_field_name_t key = str(name);
    wasi_http_types_list_field_value_t values;
    wasi_http_types_method_fields_get(wasi_http_types_borrow_fields(headers), &key, &values);
    char *found = NULL;
    if (values.len > 0) {
        found = malloc(values.ptr[0].len + 1);
        if (found != NULL) {
            memcpy(found, values.ptr[0].ptr, values.ptr[0].len);
            found[values.ptr[0].len] = '\0';
        }
    }
    wasi_http_types_list_field_value_free(&values);
    wasi_http_types_fields_drop_own(headers);
    return found;
}

static void set_header(wasi_http_types_own_fields_t fields, const char *name, const char *value) {
    wasi_http_types_field_name_t key = str(name);
    wasi_http_types_field_value_t field = {(uint8_t *)value, strlen(value)};
    wasi_http_types_list_field_value_t values = {&field, 1};
    wasi_http_types_header_error_t err;
    if (!wasi_http_types_method_fields_set(wasi_http_types_borrow_fields(fields), &key, &values, &err)) {
        /* A header the host refuses is a bug in the fixture: fail loudly. */
        __builtin_trap();
    }
}

struct body response_start(outparam_t out, uint16_t status, const char *const *extra) {
    wasi_http_types_own_fields_t headers = wasi_http_types_constructor_fields();
    set_header(headers, "content-type", "text/plain");
    for (const char *const *h = extra; h != NULL && h[0] != NULL; h += 2) {
        set_header(headers, h[0], h[1]);
    }
    wasi_http_types_own_outgoing_response_t response = wasi_http_types_constructor_outgoing_response(headers);
    wasi_http_types_borrow_outgoing_response_t borrowed = wasi_http_types_borrow_outgoing_response(response);
    struct body body;
    if (!wasi_http_types_method_outgoing_response_set_status_code(borrowed, status) ||
        !wasi_http_types_method_outgoing_response_body(borrowed, &body.body) ||
        !wasi_http_types_method_outgoing_body_write(wasi_http_types_borrow_outgoing_body(body.body), &body.stream)) {
        __builtin_trap();
    }
    /* Set the response before writing the body, so a large body streams out
     * instead of filling the host's buffer with nobody reading. */
    wasi_http_types_result_own_outgoing_response_error_code_t result = {.is_err = false, .val.ok = response};
    wasi_http_types_static_response_outparam_set(out, &result);
    return body;
}

bool body_write(struct body *body, const void *data, size_t len) {
    const uint8_t *bytes = data;
    while (len > 0) {
        size_t n = len < WRITE_CHUNK ? len : WRITE_CHUNK;
        service_list_u8_t chunk = {(uint8_t *)bytes, n};
        wasi_io_streams_stream_error_t err;
        if (!wasi_io_streams_method_output_stream_blocking_write_and_flush(
                wasi_io_streams_borrow_output_stream(body->stream), &chunk, &err)) {
            if (err.tag == WASI_IO_STREAMS_STREAM_ERROR_LAST_OPERATION_FAILED) {
                wasi_io_error_error_drop_own(err.val.last_operation_failed);
            }
            return false;
        }
        bytes += n;
        len -= n;
    }
    return true;
}

bool body_copy(struct body *body, wasi_io_streams_borrow_input_stream_t input) {
    for (;;) {
        service_list_u8_t chunk;
        wasi_io_streams_stream_error_t err;
        if (!wasi_io_streams_method_input_stream_blocking_read(input, READ_CHUNK, &chunk, &err)) {
            if (err.tag == WASI_IO_STREAMS_STREAM_ERROR_CLOSED) {
                return true;
            }
            wasi_io_error_error_drop_own(err.val.last_operation_failed);
            return false;
        }
        bool written = body_write(body, chunk.ptr, chunk.len);
        service_list_u8_free(&chunk);
        if (!written) {
            return false;
        }
    }
}

void body_finish(struct body *body) {
    wasi_io_streams_output_stream_drop_own(body->stream);
    wasi_http_types_error_code_t err;
    if (!wasi_http_types_static_outgoing_body_finish(body->body, NULL, &err)) {
        wasi_http_types_error_code_free(&err);
    }
}

void respond(outparam_t out, uint16_t status, const char *const *extra, const char *text) {
    struct body body = response_start(out, status, extra);
    body_write(&body, text, strlen(text));
    body_finish(&body);
}

void request_drop(request_t request) {
    wasi_http_types_incoming_request_drop_own(request);
}
