;; Prints a line, then reaches `unreachable` two calls deep, so that the trap's
;; backtrace names the functions on the way.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\10\00\00\00\0e\00\00\00")
  (data (i32.const 16) "about to trap\n")
  (func $crash_here unreachable)
  (func $call_crash (call $crash_here))
  (func (export "_start")
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $call_crash)))
