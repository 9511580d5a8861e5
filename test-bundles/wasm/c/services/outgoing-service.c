/* outgoing-service: makes an outgoing GET through wasi:http/outgoing-handler to
 * the URL in request header `x-target` (`http://HOST:PORT/PATH?QUERY`: scheme,
 * authority, path with query) and answers 200 "upstream status S: " followed by
 * the upstream body. An outgoing error answers 502 "outgoing request failed:
 * NAME\n" with the error-code case's name; a missing or malformed `x-target`
 * answers 400. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

/* The cases of wasi:http/types.error-code, in order (wit/deps/http.wit). */
static const char *const ERROR_NAMES[] = {
    "DNS-timeout", "DNS-error", "destination-not-found", "destination-unavailable",
    "destination-IP-prohibited", "destination-IP-unroutable", "connection-refused",
    "connection-terminated", "connection-timeout", "connection-read-timeout",
    "connection-write-timeout", "connection-limit-reached", "TLS-protocol-error",
    "TLS-certificate-error", "TLS-alert-received", "HTTP-request-denied",
    "HTTP-request-length-required", "HTTP-request-body-size", "HTTP-request-method-invalid",
    "HTTP-request-URI-invalid", "HTTP-request-URI-too-long", "HTTP-request-header-section-size",
    "HTTP-request-header-size", "HTTP-request-trailer-section-size", "HTTP-request-trailer-size",
    "HTTP-response-incomplete", "HTTP-response-header-section-size", "HTTP-response-header-size",
    "HTTP-response-body-size", "HTTP-response-trailer-section-size", "HTTP-response-trailer-size",
    "HTTP-response-transfer-coding", "HTTP-response-content-coding", "HTTP-response-timeout",
    "HTTP-upgrade-failed", "HTTP-protocol-error", "loop-detected", "configuration-error",
    "internal-error",
};

static void fail(outparam_t out, wasi_http_types_error_code_t *err) {
    char body[128];
    const char *name = err->tag < sizeof ERROR_NAMES / sizeof ERROR_NAMES[0] ? ERROR_NAMES[err->tag] : "unknown";
    snprintf(body, sizeof body, "outgoing request failed: %s\n", name);
    respond(out, 502, NULL, body);
    wasi_http_types_error_code_free(err);
}

static const char ROOT[] = "/";

static service_string_t slice(const char *from, const char *to) {
    return (service_string_t){(uint8_t *)from, (size_t)(to - from)};
}

/* Builds the GET for `url`, or returns false when the URL is not SCHEME://AUTHORITY[/PATH]. */
static bool build_request(const char *url, wasi_http_types_own_outgoing_request_t *request) {
    const char *sep = strstr(url, "://");
    if (sep == NULL) {
        return false;
    }
    const char *authority = sep + 3;
    const char *path = strchr(authority, '/');
    const char *end = path != NULL ? path : authority + strlen(authority);
    if (end == authority) {
        return false;
    }
    wasi_http_types_scheme_t scheme;
    if ((size_t)(sep - url) == 4 && strncmp(url, "http", 4) == 0) {
        scheme.tag = WASI_HTTP_TYPES_SCHEME_HTTP;
    } else if ((size_t)(sep - url) == 5 && strncmp(url, "https", 5) == 0) {
        scheme.tag = WASI_HTTP_TYPES_SCHEME_HTTPS;
    } else {
        scheme.tag = WASI_HTTP_TYPES_SCHEME_OTHER;
        scheme.val.other = slice(url, sep);
    }
    service_string_t host = slice(authority, end);
    service_string_t path_with_query = path != NULL ? slice(path, path + strlen(path)) : slice(ROOT, ROOT + 1);

    *request = wasi_http_types_constructor_outgoing_request(wasi_http_types_constructor_fields());
    wasi_http_types_borrow_outgoing_request_t borrowed = wasi_http_types_borrow_outgoing_request(*request);
    wasi_http_types_method_t get = {.tag = WASI_HTTP_TYPES_METHOD_GET};
    if (!wasi_http_types_method_outgoing_request_set_method(borrowed, &get) ||
        !wasi_http_types_method_outgoing_request_set_scheme(borrowed, &scheme) ||
        !wasi_http_types_method_outgoing_request_set_authority(borrowed, &host) ||
        !wasi_http_types_method_outgoing_request_set_path_with_query(borrowed, &path_with_query)) {
        wasi_http_types_outgoing_request_drop_own(*request);
        return false;
    }
    return true;
}

/* Waits for the upstream response; false (with `err` set) when it failed. */
static bool await_response(wasi_http_types_own_future_incoming_response_t future,
                           wasi_http_types_own_incoming_response_t *response, wasi_http_types_error_code_t *err) {
    wasi_http_types_borrow_future_incoming_response_t borrowed = wasi_http_types_borrow_future_incoming_response(future);
    wasi_io_poll_own_pollable_t ready = wasi_http_types_method_future_incoming_response_subscribe(borrowed);
    wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(ready));
    wasi_io_poll_pollable_drop_own(ready);
    wasi_http_types_result_result_own_incoming_response_error_code_void_t got;
    if (!wasi_http_types_method_future_incoming_response_get(borrowed, &got) || got.is_err) {
        __builtin_trap(); /* ready after block, and read only once */
    }
    wasi_http_types_future_incoming_response_drop_own(future);
    if (got.val.ok.is_err) {
        *err = got.val.ok.val.err;
        return false;
    }
    *response = got.val.ok.val.ok;
    return true;
}

void exports_wasi_http_incoming_handler_handle(request_t request, outparam_t out) {
    char *url = request_header(request, "x-target");
    wasi_http_types_own_outgoing_request_t outgoing;
    if (url == NULL || !build_request(url, &outgoing)) {
        respond(out, 400, NULL, "x-target must be a URL like http://HOST:PORT/PATH\n");
        free(url);
        request_drop(request);
        return;
    }
    free(url);

    wasi_http_types_own_future_incoming_response_t future;
    wasi_http_types_own_incoming_response_t response;
    wasi_http_types_error_code_t err;
    if (!wasi_http_outgoing_handler_handle(outgoing, NULL, &future, &err) ||
        !await_response(future, &response, &err)) {
        fail(out, &err);
        request_drop(request);
        return;
    }

    wasi_http_types_borrow_incoming_response_t borrowed = wasi_http_types_borrow_incoming_response(response);
    char head[64];
    snprintf(head, sizeof head, "upstream status %u: ", (unsigned)wasi_http_types_method_incoming_response_status(borrowed));
    wasi_http_types_own_incoming_body_t incoming;
    wasi_http_types_own_input_stream_t input;
    if (!wasi_http_types_method_incoming_response_consume(borrowed, &incoming) ||
        !wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(incoming), &input)) {
        __builtin_trap();
    }
    struct body body = response_start(out, 200, NULL);
    body_write(&body, head, strlen(head));
    body_copy(&body, wasi_io_streams_borrow_input_stream(input));
    body_finish(&body);

    wasi_io_streams_input_stream_drop_own(input);
    wasi_http_types_future_trailers_drop_own(wasi_http_types_static_incoming_body_finish(incoming));
    wasi_http_types_incoming_response_drop_own(response);
    request_drop(request);
}
