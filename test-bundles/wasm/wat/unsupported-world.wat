;; A component that imports an interface amphi does not provide and exports
;; nothing: neither its imports can be satisfied nor is it a `wasi:cli/run` command.
(component
  (import "amphi:nope/thing@0.1.0" (instance
    (export "frob" (func)))))
