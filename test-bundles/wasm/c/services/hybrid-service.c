/* hybrid-service: both a command and a service. As a command (`wasi:cli/run`,
 * from the command adapter's `_start`) it prints "hybrid ran as a command" and
 * exits 0; as a service (`wasi:http/incoming-handler`) it answers every request
 * 200 "hello from a hybrid service\n". */
#include <stdio.h>

#include "http.h"

int main(void) {
    printf("hybrid ran as a command\n");
    return 0;
}

void exports_wasi_http_incoming_handler_handle(request_t request, outparam_t out) {
    respond(out, 200, NULL, "hello from a hybrid service\n");
    request_drop(request);
}
