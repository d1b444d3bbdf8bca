// Package cputime reads the process's CPU time, for benchmarks that report
// CPU seconds beside wall time: on a machine shared with other work, CPU
// time is the steadier of the two.
package cputime
