/* hybrid-service: both a command and a service (world `hybrid-service` in
 * wit/service.wit). Its `wasi:cli/run` prints "hybrid ran as a command" and
 * returns success (exit 0); its `wasi:http/incoming-handler` answers every
 * request 200 "hello from a hybrid service\n". */
#include <stdio.h>

#include "http.h"

bool exports_wasi_cli_run_run(void) {
    printf("hybrid ran as a command\n");
    fflush(stdout);
    return true;
}

void exports_wasi_http_incoming_handler_handle(request_t request, outparam_t out) {
    respond(out, 200, NULL, "hello from a hybrid service\n");
    request_drop(request);
}
