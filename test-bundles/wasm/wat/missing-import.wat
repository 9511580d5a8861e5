;; Imports a WASI function that does not exist: instantiation must fail (at create).
(module
  (import "wasi_snapshot_preview1" "no_such_function" (func $nope))
  (memory (export "memory") 1)
  (func (export "_start") (call $nope)))
