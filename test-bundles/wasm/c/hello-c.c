/* The C hello world; componentized as hello-component.wasm (prints "hello from wasm"). */
#include <stdio.h>

int main(void) {
    puts("hello from wasm");
    return 0;
}
