/* memory-service: allocates (malloc, then writes every page) the number of MiB
 * in request header `x-alloc-mib` (default 1) and answers 200
 * "allocated N MiB\n", or 500 "allocation failed\n" when malloc fails (the
 * host refused to grow the linear memory). */
#include <stdio.h>
#include <stdlib.h>

#include "http.h"

#define PAGE 4096

/* Keeps the block reachable so the allocation and its writes are not optimized out. */
static volatile uint8_t *volatile kept;

void exports_wasi_http_incoming_handler_handle(request_t request, outparam_t out) {
    char *text = request_header(request, "x-alloc-mib");
    unsigned long long mib = text != NULL ? strtoull(text, NULL, 10) : 1;
    free(text);

    size_t size = (size_t)mib << 20;
    uint8_t *block = (mib >> 12) == 0 ? malloc(size) : NULL; /* under 4 GiB: wasm32 */
    if (block == NULL) {
        respond(out, 500, NULL, "allocation failed\n");
    } else {
        for (size_t at = 0; at < size; at += PAGE) {
            ((volatile uint8_t *)block)[at] = 1;
        }
        kept = block;
        char body[64];
        snprintf(body, sizeof body, "allocated %llu MiB\n", mib);
        respond(out, 200, NULL, body);
    }
    request_drop(request);
}
