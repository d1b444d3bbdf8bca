//go:build !unix && !windows

package itec

import "os"

// lockFile is a no-op where the platform has no advisory file lock
// (js/wasm, plan9, wasip1): Run cannot exclude a second runner there, and
// the caller must make sure only one process uses a checkpoint directory.
func lockFile(*os.File) error { return nil }
