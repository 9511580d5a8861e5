/* slow-service: sleeps for the milliseconds in request header `x-sleep-ms`
 * (default 2000) by blocking on a wasi:clocks monotonic-clock pollable (idle,
 * not a busy loop), then answers 200 "slept N ms\n". With a header `x-spin` it
 * spins in a busy loop forever instead (only epoch interruption stops it). */
#include <stdio.h>
#include <stdlib.h>

#include "http.h"

void exports_wasi_http_incoming_handler_handle(request_t request, outparam_t out) {
    char *spin = request_header(request, "x-spin");
    if (spin != NULL) {
        for (volatile uint64_t turns = 0;; turns++) {
        }
    }
    char *text = request_header(request, "x-sleep-ms");
    uint64_t ms = text != NULL ? strtoull(text, NULL, 10) : 2000;
    free(text);

    wasi_io_poll_own_pollable_t timer = wasi_clocks_monotonic_clock_subscribe_duration(ms * 1000000);
    wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(timer));
    wasi_io_poll_pollable_drop_own(timer);

    char body[64];
    snprintf(body, sizeof body, "slept %llu ms\n", (unsigned long long)ms);
    respond(out, 200, NULL, body);
    request_drop(request);
}
