;; Loads from far past the end of its one-page memory: an out-of-bounds trap,
;; which wasmtime catches through its SIGSEGV handler (guard pages).
(module
  (memory (export "memory") 1)
  (func $read_far (result i32) (i32.load (i32.const 0x7fff0000)))
  (func (export "_start") (drop (call $read_far))))
