/* echo-service: 200 with the request body streamed back unchanged (read until
 * the incoming stream closes, of any size) and the response header `x-method`
 * naming the request method. */
#include <stdlib.h>
#include <string.h>

#include "http.h"

static const char *const METHODS[] = {
    [WASI_HTTP_TYPES_METHOD_GET] = "GET",         [WASI_HTTP_TYPES_METHOD_HEAD] = "HEAD",
    [WASI_HTTP_TYPES_METHOD_POST] = "POST",       [WASI_HTTP_TYPES_METHOD_PUT] = "PUT",
    [WASI_HTTP_TYPES_METHOD_DELETE] = "DELETE",   [WASI_HTTP_TYPES_METHOD_CONNECT] = "CONNECT",
    [WASI_HTTP_TYPES_METHOD_OPTIONS] = "OPTIONS", [WASI_HTTP_TYPES_METHOD_TRACE] = "TRACE",
    [WASI_HTTP_TYPES_METHOD_PATCH] = "PATCH",
};

void exports_wasi_http_incoming_handler_handle(request_t request, outparam_t out) {
    wasi_http_types_borrow_incoming_request_t borrowed = wasi_http_types_borrow_incoming_request(request);
    wasi_http_types_method_t method;
    wasi_http_types_method_incoming_request_method(borrowed, &method);
    char *other = method.tag == WASI_HTTP_TYPES_METHOD_OTHER
                      ? strndup((const char *)method.val.other.ptr, method.val.other.len)
                      : NULL;
    const char *name = other != NULL ? other : METHODS[method.tag];
    const char *extra[] = {"x-method", name, NULL};

    wasi_http_types_own_incoming_body_t incoming;
    wasi_http_types_own_input_stream_t input;
    if (!wasi_http_types_method_incoming_request_consume(borrowed, &incoming) ||
        !wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(incoming), &input)) {
        __builtin_trap();
    }
    struct body body = response_start(out, 200, extra);
    body_copy(&body, wasi_io_streams_borrow_input_stream(input));
    body_finish(&body);

    wasi_io_streams_input_stream_drop_own(input);
    wasi_http_types_future_trailers_drop_own(wasi_http_types_static_incoming_body_finish(incoming));
    request_drop(request);
    free(other);
    wasi_http_types_method_free(&method);
}
