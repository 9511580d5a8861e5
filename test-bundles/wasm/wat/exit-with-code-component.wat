;; A component, written directly in the component model's text format, that
;; calls wasi:cli/exit.exit-with-code(7) from its wasi:cli/run export: the path
;; by which a WASI 0.2 program leaves a status other than 0 or 1.
(component
  (import "wasi:cli/exit@0.2.12" (instance $exit
    (export "exit-with-code" (func (param "status-code" u8)))))
  (core func $exit_with_code (canon lower (func $exit "exit-with-code")))
  (core module $main
    (import "wasi" "exit-with-code" (func $exit_with_code (param i32)))
    (func (export "run") (result i32)
      (call $exit_with_code (i32.const 7))
      (i32.const 0)))
  (core instance $wasi (export "exit-with-code" (func $exit_with_code)))
  (core instance $instance (instantiate $main (with "wasi" (instance $wasi))))
  (func $run (result (result)) (canon lift (core func $instance "run")))
  (instance $run_interface (export "run" (func $run)))
  (export "wasi:cli/run@0.2.12" (instance $run_interface)))
