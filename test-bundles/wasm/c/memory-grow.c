/* Grows linear memory by 1 MiB (16 pages) at a time until memory.grow fails and
 * prints as JSON how far it got:
 *   {"initial_pages":N,"final_pages":M,"final_bytes":B}
 * With a memory ceiling the loop stops at the ceiling; without one at 4 GiB. */
#include <stdint.h>
#include <stdio.h>

int main(void) {
    size_t initial = __builtin_wasm_memory_size(0);
    size_t pages = initial;
    for (;;) {
        if (__builtin_wasm_memory_grow(0, 16) == (size_t)-1) {
            break;
        }
        pages += 16;
    }
    printf("{\"initial_pages\":%zu,\"final_pages\":%zu,\"final_bytes\":%llu}\n", initial, pages,
           (unsigned long long)pages * 65536ULL);
    return 0;
}
