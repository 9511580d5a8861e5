;; Prints "sleeping" and then sleeps in `poll_oneoff` (an hour at a time, for
;; ever): an idle wasm workload, for memory and density measurements.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; iovec at 0: "sleeping\n" at 16, 9 bytes; nwritten lands at 8.
  (data (i32.const 0) "\10\00\00\00\09\00\00\00")
  (data (i32.const 16) "sleeping\n")
  (func (export "_start")
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    ;; One subscription at 64 (48 bytes): userdata 0, tag 0 (clock), clock id 1
    ;; (monotonic) at 80, a relative timeout of 3600 s at 88, precision 0, flags 0.
    (i32.store8 (i32.const 72) (i32.const 0))
    (i32.store (i32.const 80) (i32.const 1))
    (i64.store (i32.const 88) (i64.const 3600000000000))
    ;; The event lands at 128, the number of events at 160.
    (loop $forever
      (drop (call $poll_oneoff (i32.const 64) (i32.const 128) (i32.const 1) (i32.const 160)))
      (br $forever))))
