/* trap-service: writes "trap-service: about to trap" to stderr, then traps in
 * the handler before any response is set (the host answers 500). */
#include <stdio.h>

#include "http.h"

void exports_wasi_http_incoming_handler_handle(request_t request, outparam_t out) {
    (void)request;
    (void)out;
    fprintf(stderr, "trap-service: about to trap\n");
    __builtin_trap();
}
