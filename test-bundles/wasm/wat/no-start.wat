;; A valid module without a `_start` export: not a WASI command.
(module
  (memory (export "memory") 1)
  (func (export "main")))
