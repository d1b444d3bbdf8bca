//go:build gc && !purego

package simd

import (
	"sync"
	"syscall"

	"golang.org/x/sys/cpu"
)

// AMX tiles are 8 KiB of register state that Linux (5.16 and later) does
// not grant a process until it asks: arch_prctl(ARCH_REQ_XCOMP_PERM,
// XFEATURE_XTILEDATA). Until then a tile instruction raises SIGILL. The
// request is made once; a refusal (older kernel, a hypervisor that hides
// the state, a seccomp filter) leaves the AVX-512 tiers in charge.
const (
	archReqXcompPerm  = 0x1023
	xfeatureXtiledata = 18
)

var amx struct {
	once sync.Once
	ok   bool
}

// AMXBF16 reports whether this process may run AMX-BF16 tile instructions
// (TDPBF16PS): the CPU has AMX-TILE and AMX-BF16 and the kernel granted
// the tile state. The first call makes the request.
func AMXBF16() bool {
	amx.once.Do(func() {
		if !cpu.X86.HasAMXTile || !cpu.X86.HasAMXBF16 {
			return
		}
		_, _, errno := syscall.RawSyscall(syscall.SYS_ARCH_PRCTL, archReqXcompPerm, xfeatureXtiledata, 0)
		amx.ok = errno == 0
	})
	return amx.ok
}
