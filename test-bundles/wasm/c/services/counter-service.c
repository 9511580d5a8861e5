/* counter-service: answers 200 "count=N\n" with the value of a global counter
 * (starting at 0) before incrementing it. A host that gives every request a
 * fresh instance answers "count=0\n" every time; a reused instance counts up. */
#include <stdio.h>

#include "http.h"

static unsigned long long counter;

void exports_wasi_http_incoming_handler_handle(request_t request, outparam_t out) {
    char body[64];
    snprintf(body, sizeof body, "count=%llu\n", counter++);
    respond(out, 200, NULL, body);
    request_drop(request);
}
