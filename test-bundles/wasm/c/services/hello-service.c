/* hello-service: every request gets 200, `content-type: text/plain` and the body
 * "hello from a wasm service\n"; a request header `x-echo` comes back as the
 * response header `x-echo` with the same value. */
#include <stdlib.h>

#include "http.h"

void exports_wasi_http_incoming_handler_handle(request_t request, outparam_t out) {
    char *echo = request_header(request, "x-echo");
    const char *extra[] = {"x-echo", echo, NULL};
    respond(out, 200, echo != NULL ? extra : NULL, "hello from a wasm service\n");
    free(echo);
    request_drop(request);
}
